// Certification inside a User-Mode Linux guest (`run --kernel uml:6.12`, issue 22): a real UML
// kernel built from Debian's linux-source-6.12 (`fusecert kernel build 6.12`; .ci/run builds it
// before the tests), booted with the host's root read-only. On 6.12 the kernel's fdinfo does not
// name a /dev/fuse fd's connection and UML has no syscall tracepoints: the clauses that need the
// connection still run (the server is found by who fusecert started), and those that need the
// ioctl trace skip as platform, naming the option.
import { chmodSync, existsSync, linkSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, chownSync, copyFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, test } from 'vitest';
import { missing, ptfsManifest, ROOT, CLI, leftoversOf } from './util.ts';
import { findKernel } from '../kernel/build.ts';
import type { Results } from '../report/index.ts';

const why = missing('ptfs', 'uml-6.12');
const PTFS_MANIFEST = path.join(ROOT, 'servers/ptfs/manifest.json');

/** Every skip of a guest run is the kernel's lack, named: a platform skip saying what is missing. */
function unnamedSkips(r: Results): string[] {
  return r.clauses
    .filter((c) => c.status === 'skip' && !(c.skipKind === 'platform' || c.skipKind === 'not-applicable'))
    .map((c) => `${c.id} (${c.skipKind}): ${c.reason}`);
}

describe.skipIf(why)(`a run inside a UML 6.12 guest${why ? ` (skipped: ${why})` : ''}`, () => {
  const dirs: string[] = [];
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  // One guest for everything this file shows (a boot and the guest's node start-up cost ~40 s of a
  // core): as a user without root, the reference server and a broken build, on the clauses that
  // tell this kernel apart; .ci/run certifies ptfs whole inside the same kernel.
  test("as a user without root: ptfs passes the BKG and NEG clauses that differ on 6.12, a build that answers opens with KEEP_CACHE beside PASSTHROUGH fails BKG-001 and BKG-002; the reports name the guest and are the user's; nothing is left", async () => {
    // the user's own cache (root's is not readable to it): the cached kernel, linked in
    const k = findKernel('6.12')!;
    const home = mkdtempSync(path.join(os.tmpdir(), 'fusecert-nobody-'));
    dirs.push(home);
    const cache = path.join(home, 'kernels');
    const entry = path.join(cache, k.key);
    mkdirSync(entry, { recursive: true });
    try {
      linkSync(k.linux, path.join(entry, 'linux'));
    } catch {
      copyFileSync(k.linux, path.join(entry, 'linux'));
    }
    writeFileSync(path.join(entry, 'meta.json'), JSON.stringify({ ...k, linux: path.join(entry, 'linux') }));
    const tmp = path.join(home, 'tmp');
    const out = path.join(home, 'out');
    mkdirSync(tmp);
    for (const d of [home, cache, entry, tmp]) chownSync(d, 65534, 65534);
    chmodSync(home, 0o755);
    const broken = ptfsManifest('ptfs-keep-cache', ['--defect', 'keep-cache-with-passthrough']);
    chmodSync(path.dirname(broken), 0o755); // made by root, read by the user
    const only = 'BKG-001,BKG-002,BKG-003,BKG-004,BKG-005,BKG-007,BKG-008,NEG-002,NEG-003,NEG-006';
    const r = await execa(
      'setpriv',
      [
        '--reuid=65534',
        '--regid=65534',
        '--clear-groups',
        '--',
        process.execPath,
        CLI,
        'run',
        '--kernel',
        'uml:6.12',
        '--server',
        PTFS_MANIFEST,
        broken,
        '--only',
        only,
        '--seed',
        '7',
        '--out',
        out,
      ],
      { cwd: ROOT, reject: false, timeout: 900_000, env: { NO_COLOR: '1', HOME: home, TMPDIR: tmp, FUSECERT_KERNEL_CACHE: cache }, extendEnv: true },
    );
    const tell = `exit ${r.exitCode}\n${r.stdout.slice(-3000)}\n${r.stderr.slice(-1500)}`;
    expect(r.exitCode, tell).toBe(1); // the broken build fails MUST clauses
    expect(r.stdout).toMatch(/\[uml-6\.12\] booted in [\d.]+ s: Linux 6\.12\.\d+ 1 cpu/);
    const load = (name: string) => {
      const f = path.join(out, name, 'results.json');
      expect(existsSync(f), `${f}\n${tell}`).toBe(true);
      return JSON.parse(readFileSync(f, 'utf8')) as Results;
    };
    const good = load('ptfs');
    const bad = load('ptfs-keep-cache');
    for (const res of [good, bad]) {
      expect(res.platform.guest?.kind).toBe('uml');
      expect(res.platform.kernel).toMatch(/^6\.12\.\d+/);
      expect(res.platform.guest?.host).toBe(os.release());
      expect(res.platform.guest?.absent).toContain('CONFIG_FTRACE_SYSCALLS');
      expect(res.platform.root, 'root inside the guest').toBe(true);
    }
    const st = (res: Results, id: string) => res.clauses.find((c) => c.id === id)?.status;
    expect(good.summary.fail, tell).toBe(0);
    expect(good.summary.hung, tell).toBe(0);
    // found without fdinfo's fuse_connection: the borrowed-fd probe and the backing ids need the server's fd
    for (const id of ['BKG-001', 'BKG-002', 'BKG-005', 'BKG-007', 'NEG-002', 'NEG-006']) expect(st(good, id), `${id}\n${tell}`).toBe('pass');
    // the backing-id ledger needs the ioctl syscall tracepoints, which 6.12's UML does not have
    for (const id of ['BKG-003', 'BKG-004', 'BKG-008', 'NEG-003']) {
      const c = good.clauses.find((x) => x.id === id)!;
      expect([c.status, c.skipKind, c.reason], id).toEqual(['skip', 'platform', 'tracefs lacks syscalls:sys_enter_ioctl (CONFIG_FTRACE_SYSCALLS)']);
    }
    expect(unnamedSkips(good), tell).toEqual([]);
    for (const c of good.clauses.filter((x) => x.status === 'skip' && x.skipKind === 'platform')) expect(c.reason).toMatch(/CONFIG_|Linux \d|lacks/);
    // FOPEN_KEEP_CACHE beside FOPEN_PASSTHROUGH: the guest kernel fails the open with EIO
    for (const id of ['BKG-001', 'BKG-002']) expect(st(bad, id), `${id}\n${tell}`).toBe('fail');
    expect(bad.clauses.find((c) => c.id === 'BKG-001')!.reason).toMatch(/EIO/);
    expect(bad.summary.exitCode).toBe(1);
    expect(readFileSync(path.join(out, 'ptfs', 'junit.xml'), 'utf8')).toMatch(/name="machine" value="User-Mode Linux guest, kernel 6\.12/);
    // written by the guest through hostfs as the host user
    const { stdout } = await execa('stat', ['-c', '%u', path.join(out, 'ptfs', 'results.json')]);
    expect(stdout.trim()).toBe('65534');
    expect(leftoversOf(tmp, -1), tell).toEqual([]);
    expect(existsSync(path.join(home, '.uml')), 'UML keeps its umid directory in the run, not ~/.uml').toBe(false);
  }, 900_000);
});
