// A fusecert run inside a User-Mode Linux guest (`fusecert run --kernel uml:VERSION`, issue 22).
// The guest boots with the host's root as its own root, read-only (hostfs), so it runs the same
// node, the same fusecert checkout and the same servers; everything it writes goes to a tmpfs of
// its own (/run: TMPDIR, sources, mountpoints, the run's state) or to the two host directories
// it mounts read-write at their host paths: the run's report directory and a control directory
// under the host run's state dir (the init script, the guest's exit code). The init mounts what fusecert needs
// (proc, sysfs, devtmpfs for /dev/fuse, tracefs, fusectl, cgroup2), brings loopback up, runs
// `fusecert run` and powers the machine off. UML is an ordinary process of the host user: no
// root is needed on the host. The host side is a run of its own (state dir, guardian,
// registry), so an interrupt or a SIGKILL of the runner kills the guest's processes and removes
// its directories the same way it does a server's.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync, accessSync, constants } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { register, processStart } from '../mount/index.ts';
import type { KernelMeta } from './build.ts';
import type { GuestInfo } from '../runenv/index.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const CLI = path.join(ROOT, 'bin/fusecert.mjs');
const INIT = 'fusecert-guest: init';
const READY = 'fusecert-guest: ready';

const sq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** The guest's /sbin/init: a shell script (the host's /bin/sh, seen through hostfs). */
export function initScript(o: { cwd: string; argv: string[]; env: Record<string, string>; out: string; ctl: string }): string {
  const exports = Object.entries(o.env)
    .map(([k, v]) => `export ${k}=${sq(v)}`)
    .join('\n');
  return `#!/bin/sh
# the init of a fusecert UML guest, written by src/kernel/guest.ts for one run
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
${exports}
echo "${INIT}"
fail() { echo "fusecert-guest: $*"; echo o > /proc/sysrq-trigger; sleep 30; }
mount -t proc proc /proc || fail "cannot mount /proc"
mount -t sysfs sysfs /sys || fail "cannot mount /sys"
[ -e /dev/fuse ] || mount -t devtmpfs devtmpfs /dev || fail "cannot mount devtmpfs on /dev (CONFIG_DEVTMPFS)"
[ -e /dev/fuse ] || fail "no /dev/fuse in the guest (CONFIG_FUSE_FS)"
mkdir -p /dev/shm /dev/pts && mount -t tmpfs shm /dev/shm
# the guest's scratch space; the host's /tmp stays as it is (read-only, like the rest of the root)
mount -t tmpfs -o mode=755 run /run || fail "cannot mount a tmpfs on /run"
mkdir -p /run/tmp && chmod 1777 /run/tmp
# the two host directories it writes, at their host paths (they exist on the host; under /run the
# guest makes the mountpoint)
mkdir -p ${sq(o.out)} ${sq(o.ctl)} 2>/dev/null
mount -t hostfs -o ${sq(o.out)} none ${sq(o.out)} || fail "cannot mount the report directory ${o.out} (CONFIG_HOSTFS)"
mount -t hostfs -o ${sq(o.ctl)} none ${sq(o.ctl)} || fail "cannot mount the control directory ${o.ctl}"
mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null
mount -t fusectl none /sys/fs/fuse/connections 2>/dev/null
mount -t cgroup2 none /sys/fs/cgroup 2>/dev/null
ip link set lo up 2>/dev/null || ifconfig lo up 2>/dev/null
export TMPDIR=/run/tmp HOME=/run/tmp
cd ${sq(o.cwd)} || fail "cannot enter ${o.cwd}"
echo "${READY} $(uname -r) $(nproc) cpu"
# through a pipe: the console is a terminal, the host's reader is not
{ ${[process.execPath, CLI, ...o.argv].map(sq).join(' ')} </dev/null; echo $? > ${sq(o.ctl + '/exit-code')}; } 2>&1 | cat
sync
echo o > /proc/sysrq-trigger
sleep 30
`;
}

export interface GuestRun {
  exitCode: number;
  /** ms from the start of the guest to its power-off */
  ms: number;
  /** ms until the guest's init ran */
  bootMs: number;
}

export class GuestError extends Error {}

/** A directory the UML memory file can live in: tmpfs when the host has one writable. */
function memoryDir(fallback: string): string {
  try {
    accessSync('/dev/shm', constants.W_OK);
    return '/dev/shm';
  } catch {
    return fallback;
  }
}

/**
 * Boot KERNEL, run `fusecert ARGV` in it with the reports going to OUT (a host directory), and
 * wait for the power-off. Lines the guest prints go to `line`, prefixed by the caller.
 */
export async function runInGuest(
  kernel: KernelMeta,
  o: { argv: string[]; out: string; cwd: string; env: Record<string, string>; line: (l: string) => void; timeoutMs: number; memMb?: number },
): Promise<GuestRun> {
  mkdirSync(o.out, { recursive: true });
  // under the host run's TMPDIR (its state dir): the sweep of the run removes it
  const ctl = mkdtempSync(path.join(os.tmpdir(), 'uml-'));
  const info: GuestInfo = { kind: 'uml', kernel: kernel.version, source: kernel.source, absent: kernel.absent, host: os.release() };
  const init = path.join(ctl, 'init');
  writeFileSync(init, initScript({ cwd: o.cwd, argv: o.argv, env: { ...o.env, FUSECERT_GUEST: JSON.stringify(info) }, out: o.out, ctl }));
  chmodSync(init, 0o755);
  const args = [
    `mem=${o.memMb ?? 2048}M`,
    'rootfstype=hostfs',
    'rootflags=/',
    'ro',
    `init=${init}`,
    'con=null',
    'con0=fd:0,fd:1',
    'quiet',
    'loglevel=3',
    `uml_dir=${ctl}`, // mconsole's socket and the pid file: not ~/.uml
    'umid=guest',
  ];
  // 6.18's UML can run its processes under seccomp instead of ptrace: several times faster
  if (/^(\d+)\.(\d+)/.test(kernel.version)) {
    const [a, b] = kernel.version.split('.').map(Number) as [number, number];
    if (a > 6 || (a === 6 && b >= 18)) args.push('seccomp=on');
  }
  const t0 = Date.now();
  const child = spawn(kernel.linux, args, {
    cwd: ctl,
    // detached: its own process group, which the run's guard kills (UML's helpers stay in it)
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, TMPDIR: memoryDir(ctl) },
  });
  const forget = child.pid ? register({ kind: 'process', pid: child.pid, start: processStart(child.pid) }) : () => {};
  let bootMs = 0;
  let ready = false;
  const last: string[] = []; // the last lines, for an error
  let partial = '';
  const onData = (d: Buffer) => {
    partial += d.toString();
    const lines = partial.split(/\r?\n/);
    partial = lines.pop()!;
    for (const raw of lines) {
      const l = raw.replace(/\r/g, '');
      last.push(l);
      if (last.length > 8) last.shift();
      if (l === INIT) bootMs ||= Date.now() - t0;
      else if (l.startsWith(READY)) {
        ready = true;
        o.line(`booted in ${(bootMs / 1000).toFixed(1)} s: Linux ${l.slice(READY.length).trim()} (User-Mode Linux)`);
      } else if (ready || l.startsWith('fusecert-guest:')) o.line(l);
    }
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  const exited = new Promise<[number | null, NodeJS.Signals | null]>((r) => child.on('exit', (c, s) => r([c, s])));
  const spawnError = new Promise<Error>((r) => child.on('error', r));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      /* gone */
    }
  }, o.timeoutMs);
  const first = await Promise.race([exited, spawnError]);
  clearTimeout(timer);
  if (first instanceof Error) {
    forget();
    throw new GuestError(`could not start the UML kernel ${kernel.linux}: ${first.message}`);
  }
  // the power-off ends the main process; a helper left in the group goes with it
  try {
    process.kill(-child.pid!, 'SIGKILL');
  } catch {
    /* all gone */
  }
  forget();
  const ms = Date.now() - t0;
  const codeFile = path.join(ctl, 'exit-code');
  const code = existsSync(codeFile) ? Number(readFileSync(codeFile, 'utf8').trim()) : null;
  rmSync(ctl, { recursive: true, force: true });
  if (timedOut) throw new GuestError(`the UML guest (Linux ${kernel.version}) did not power off within ${Math.round(o.timeoutMs / 1000)} s and was killed`);
  const tail = last.join(' | ') || `exit ${first[0] ?? first[1]}`;
  if (!bootMs) throw new GuestError(`the UML guest (Linux ${kernel.version}) did not reach its init: ${tail}`);
  if (!ready) throw new GuestError(`the UML guest's init (Linux ${kernel.version}) failed before fusecert started: ${tail}`);
  if (code === null || !Number.isInteger(code))
    throw new GuestError(`the UML guest (Linux ${kernel.version}) stopped before the run inside it ended (no exit code): ${tail}`);
  return { exitCode: code, ms, bootMs };
}
