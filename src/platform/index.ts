import { existsSync, readFileSync, statSync, readdirSync, mkdirSync, openSync, closeSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import os from 'node:os';
import { execa } from 'execa';
import { mounts } from '../mount/mountinfo.ts';

import { ReplyTracer, replyTracerStatus } from '../evidence/replies.ts';
import { ENABLE_URING, uringParam } from '../mount/uring-param.ts';

export const FUSECTL = '/sys/fs/fuse/connections';
export const TRACEFS = '/sys/kernel/tracing';

export interface Check {
  name: string;
  ok: boolean;
  value: string;
  fix?: string;
}

export interface Platform {
  kernel: string;
  kernelVersion: [number, number];
  passthrough: 'y' | 'n' | 'unknown';
  root: boolean;
  capSysAdmin: boolean;
  initialUserNs: boolean;
  devFuse: boolean;
  fusectl: boolean;
  tracefs: boolean;
  fuseTracepoints: boolean;
  syscallTracepoints: boolean;
  /** the reply tracer (BPF) loads here: failures can name the server's replies */
  replyEvidence: boolean;
  replyEvidenceReason?: string;
  /**
   * FUSE over io_uring is in this kernel (the fuse module's enable_uring parameter exists: Linux
   * 6.14+ with CONFIG_FUSE_IO_URING), and the parameter's value at the probe ('Y'/'N'). A run
   * certifying an io_uring claim turns it on for its duration (src/mount/uring-param.ts).
   */
  fuseIoUring: boolean;
  enableUring: string | null;
  checks: Check[];
}

/** Why a server claiming the io_uring transport cannot be certified here, with the fix. */
export const NO_FUSE_IO_URING = `this kernel has no FUSE over io_uring (${ENABLE_URING} is missing); fix: a kernel 6.14 or later built with CONFIG_FUSE_IO_URING=y`;

function kernelConfig(): Map<string, string> | null {
  const cfg = new Map<string, string>();
  let text: string | null = null;
  try {
    text = gunzipSync(readFileSync('/proc/config.gz')).toString('utf8');
  } catch {
    const f = `/boot/config-${os.release()}`;
    if (existsSync(f)) text = readFileSync(f, 'utf8');
  }
  if (text === null) return null;
  for (const line of text.split('\n')) {
    const m = /^(CONFIG_[A-Z0-9_]+)=(.*)$/.exec(line);
    if (m) cfg.set(m[1], m[2]);
  }
  return cfg;
}

function isMounted(target: string, fstype: string): boolean {
  return mounts().some((m) => m.mountpoint === target && m.fstype === fstype);
}

async function ensureMounted(target: string, fstype: string, canMount: boolean): Promise<boolean> {
  if (isMounted(target, fstype)) return true;
  if (!canMount || !existsSync(target)) return false;
  // Mounting these pseudo filesystems at their standard places is what the platform expects;
  // it is the one change fusecert makes outside its own directories, and only when absent.
  const r = await execa('mount', ['-t', fstype, fstype === 'fusectl' ? 'none' : 'nodev', target], { reject: false });
  return r.exitCode === 0 && isMounted(target, fstype);
}

function capEff(): bigint {
  const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? BigInt('0x' + m[1]) : 0n;
}

export async function probe(): Promise<Platform> {
  const kernel = os.release();
  const km = /^(\d+)\.(\d+)/.exec(kernel);
  const kernelVersion: [number, number] = km ? [Number(km[1]), Number(km[2])] : [0, 0];
  const cfg = kernelConfig();
  const ptCfg = cfg === null ? 'unknown' : cfg.get('CONFIG_FUSE_PASSTHROUGH') === 'y' ? 'y' : 'n';
  const root = process.getuid?.() === 0;
  const capSysAdmin = (capEff() & (1n << 21n)) !== 0n;
  // The initial user namespace has a fixed proc inode number (PROC_USER_INIT_INO, 0xEFFFFFFD).
  // Comparing with /proc/1/ns/user fails where pid 1's namespace links are not readable (sandboxes).
  let initialUserNs = false;
  try {
    initialUserNs = statSync('/proc/self/ns/user').ino === 0xeffffffd;
  } catch {
    initialUserNs = false;
  }
  let devFuse = false;
  try {
    closeSync(openSync('/dev/fuse', 'r+'));
    devFuse = true;
  } catch {
    devFuse = false;
  }
  if (root && !existsSync(FUSECTL)) {
    try {
      mkdirSync(FUSECTL, { recursive: true });
    } catch {
      /* sysfs decides */
    }
  }
  const fusectl = await ensureMounted(FUSECTL, 'fusectl', root);
  const tracefs = await ensureMounted(TRACEFS, 'tracefs', root);
  const fuseTracepoints = tracefs && existsSync(`${TRACEFS}/events/fuse/fuse_request_send`) && existsSync(`${TRACEFS}/events/fuse/fuse_request_end`);
  const syscallTracepoints = tracefs && existsSync(`${TRACEFS}/events/syscalls/sys_enter_ioctl`);
  const versionOk = kernelVersion[0] > 6 || (kernelVersion[0] === 6 && kernelVersion[1] >= 9);
  const replies = await replyEvidenceProbe();
  const enableUring = uringParam();

  const checks: Check[] = [
    { name: 'kernel', ok: versionOk, value: kernel, fix: 'FUSE passthrough needs Linux 6.9 or later' },
    {
      name: 'CONFIG_FUSE_PASSTHROUGH',
      ok: ptCfg !== 'n',
      value: ptCfg,
      fix: 'rebuild the kernel with CONFIG_FUSE_PASSTHROUGH=y (passthrough clauses will be skipped)',
    },
    { name: 'root', ok: root, value: String(root), fix: 'run fusecert as root (mount(2), fusectl and tracefs need it)' },
    {
      name: 'CAP_SYS_ADMIN (initial user namespace)',
      ok: capSysAdmin && initialUserNs,
      value: `${capSysAdmin ? 'yes' : 'no'}${initialUserNs ? '' : ' (not the initial user namespace)'}`,
      fix: 'BACKING_OPEN needs CAP_SYS_ADMIN in the initial user namespace: run on the host or a privileged container',
    },
    { name: '/dev/fuse', ok: devFuse, value: devFuse ? 'read/write' : 'not openable', fix: 'modprobe fuse; in a container pass --device /dev/fuse' },
    { name: 'fusectl', ok: fusectl, value: fusectl ? FUSECTL : 'not mounted', fix: `mount -t fusectl none ${FUSECTL}` },
    { name: 'tracefs', ok: tracefs, value: tracefs ? TRACEFS : 'not mounted', fix: `mount -t tracefs nodev ${TRACEFS}` },
    { name: 'fuse tracepoints', ok: fuseTracepoints, value: String(fuseTracepoints), fix: 'fuse:fuse_request_send/end need Linux 6.12+' },
    { name: 'syscall tracepoints', ok: syscallTracepoints, value: String(syscallTracepoints), fix: 'needs CONFIG_FTRACE_SYSCALLS=y' },
    {
      name: 'FUSE over io_uring',
      ok: enableUring !== null,
      value:
        enableUring === null
          ? 'absent'
          : `enable_uring=${enableUring}${enableUring === 'Y' ? '' : ' (a run certifying claims.transport io_uring turns it on for its duration)'}`,
      fix: 'only servers claiming transport io_uring need it: a kernel 6.14+ built with CONFIG_FUSE_IO_URING=y',
    },
    {
      name: 'reply evidence (BPF)',
      ok: replies.ok,
      value: replies.ok ? 'the reply tracer loads' : replies.reason!,
      fix: 'root, CONFIG_BPF_EVENTS, and the tracer built (apt-get install clang libbpf-dev libelf-dev zlib1g-dev; fusecert build-ptfs): without it failures name what the user saw, not the reply behind it',
    },
  ];
  return {
    kernel,
    kernelVersion,
    passthrough: ptCfg,
    root,
    capSysAdmin,
    initialUserNs,
    devFuse,
    fusectl,
    tracefs,
    fuseTracepoints,
    syscallTracepoints,
    replyEvidence: replies.ok,
    ...(replies.reason ? { replyEvidenceReason: replies.reason } : {}),
    fuseIoUring: enableUring !== null,
    enableUring,
    checks,
  };
}

/** Start the reply tracer once and stop it: proves BPF programs load and attach here (~30 ms). */
async function replyEvidenceProbe(): Promise<{ ok: boolean; reason?: string }> {
  const st = replyTracerStatus();
  if (!st.available) return { ok: false, reason: st.reason! };
  try {
    (await ReplyTracer.start()).close();
    return { ok: true };
  } catch (e) {
    return { ok: false, reason: (e as Error).message };
  }
}

/** What stops a run before anything mounts (exit 2). Missing tracefs only degrades: evidence clauses skip. */
export function fatalProblems(p: Platform): Check[] {
  return p.checks.filter((c) => !c.ok && ['root', '/dev/fuse', 'kernel'].includes(c.name));
}

export function formatChecks(p: Platform): string {
  const w = Math.max(...p.checks.map((c) => c.name.length));
  const lines = p.checks.map((c) => `${c.ok ? 'ok  ' : 'MISS'}  ${c.name.padEnd(w)}  ${c.value}${c.ok ? '' : `\n      fix: ${c.fix}`}`);
  return lines.join('\n');
}

export function fuseConnections(): number[] {
  try {
    return readdirSync(FUSECTL)
      .map(Number)
      .filter((n) => Number.isFinite(n));
  } catch {
    return [];
  }
}
