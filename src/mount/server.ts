import { readFileSync } from 'node:fs';
import crypto from 'node:crypto';
import { stat } from 'node:fs/promises';
import { execa, type ResultPromise } from 'execa';
import type { ServerSpec } from '../manifest/index.ts';
import { substitute } from '../manifest/index.ts';
import { fuseMountAt, abortConnection, connectionWaiting, mounts } from './mountinfo.ts';
import { register, alive, processStart } from './registry.ts';
import { serverPids, connectionsHeldBy, mayHoldConnection } from './fuse-fds.ts';
import { allPids, pidsWhere, threadIds } from './proc.ts';

export { serverPids, connectionsHeldBy };

export class ServerStartError extends Error {
  constructor(
    message: string,
    readonly stderr: string,
  ) {
    super(message);
    this.name = 'ServerStartError';
  }
}

export interface StopReport {
  /** Exit code of the process we started (null when killed by a signal or when it daemonized). */
  exitCode: number | null;
  signal: string | null;
  /** Escalation steps beyond the manifest's unmount method; empty for a clean stop. */
  escalations: string[];
  leftMount: boolean;
  leftPids: number[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `p`, or `fallback` after `ms`: the timer is cleared when `p` wins, so it never holds the process open. */
async function within<T, F>(p: Promise<T>, ms: number, fallback: F): Promise<T | F> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<F>((r) => (timer = setTimeout(() => r(fallback), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/** Live processes whose environment holds NAME=VALUE (inherited through fork, setsid and exec). */
function processesWithEnv(name: string, value: string): number[] {
  const marker = Buffer.from(`\0${name}=${value}\0`);
  const out: number[] = [];
  for (const p of allPids()) {
    try {
      if (Buffer.concat([Buffer.from([0]), readFileSync(`/proc/${p}/environ`)]).includes(marker) && alive(p)) out.push(p);
    } catch {
      /* gone */
    }
  }
  return out;
}

export class ServerInstance {
  private stderrBuf = '';
  private exited: Promise<void>;
  private exitInfo: { exitCode: number | null; signal: string | null } | null = null;
  private forget: Array<() => void> = [];
  connection = -1;
  pids: number[] = [];
  /** Processes the server forked (FUSECERT_SERVER_ID inherited) that outlived its stop. */
  leftovers(): number[] {
    return processesWithEnv('FUSECERT_SERVER_ID', this.id);
  }
  /** How the first stat of the mount root ended ('ok' or an errno name): the server answered INIT. */
  rootStat = '';

  private constructor(
    readonly spec: ServerSpec,
    readonly source: string,
    readonly mountpoint: string,
    private child: ResultPromise,
    readonly id: string,
  ) {
    child.stderr?.on('data', (d: Buffer) => {
      this.stderrBuf = (this.stderrBuf + d.toString('utf8')).slice(-64 * 1024);
    });
    child.stdout?.on('data', (d: Buffer) => {
      this.stderrBuf = (this.stderrBuf + d.toString('utf8')).slice(-64 * 1024);
    });
    this.exited = child.then(
      (r) => {
        this.exitInfo = { exitCode: r.exitCode ?? null, signal: r.signal ?? null };
      },
      () => {
        this.exitInfo = { exitCode: null, signal: null };
      },
    );
  }

  get launcherPid(): number {
    return this.child.pid ?? -1;
  }

  stderrTail(lines = 20): string {
    return this.stderrBuf.trim().split('\n').slice(-lines).join('\n').trim();
  }

  /** The last lines of output folded into one line, for one-line errors. */
  private outputLine(): string {
    const t = this.stderrTail(3);
    return t
      ? t
          .split('\n')
          .map((l) => l.trim())
          .join(' | ')
      : '';
  }

  /**
   * The server is gone: its process exited, or (mounted, every server process still running)
   * none of them holds the connection's /dev/fuse any more, so nobody can answer the kernel.
   */
  get hasExited(): boolean {
    return this.exitInfo !== null || this.closedDevice() !== null;
  }

  /** A server that closed /dev/fuse and kept running: a sentence saying so, or null. */
  closedDevice(): string | null {
    if (this.connection < 0 || (this.exitInfo !== null && !this.spec.manifest.daemonizes)) return null;
    const live = this.pids.filter((p) => alive(p));
    if (live.length === 0 || mayHoldConnection(live, this.connection)) return null;
    return `the server (pid ${live.join(', ')}) is still running but closed /dev/fuse: connection ${this.connection} has no server`;
  }

  /** A FUSE mount the server's processes serve somewhere other than the mountpoint asked for. */
  private mountedElsewhere(): { mountpoint: string; minor: number } | null {
    const pgid = this.child.pid;
    if (!pgid) return null;
    const conns = connectionsHeldBy([...pidsWhere((st) => st.pgrp === pgid), ...processesWithEnv('FUSECERT_SERVER_ID', this.id)]);
    if (conns.length === 0) return null;
    const m = mounts().find(
      (e) => conns.includes(e.minor) && e.major === 0 && (e.fstype === 'fuse' || e.fstype.startsWith('fuse.')) && e.mountpoint !== this.mountpoint,
    );
    return m ? { mountpoint: m.mountpoint, minor: m.minor } : null;
  }

  static async start(spec: ServerSpec, source: string, mountpoint: string, extraArgs: string[] = [], scratch = ''): Promise<ServerInstance> {
    const argv = substitute([...spec.argv, ...extraArgs], source, mountpoint, scratch);
    let child: ResultPromise;
    const id = crypto.randomBytes(6).toString('hex');
    try {
      child = execa(argv[0], argv.slice(1), {
        env: { ...spec.manifest.env, FUSECERT_SERVER_ID: id },
        extendEnv: true,
        stdin: 'ignore',
        detached: true, // own process group: a stop signals the whole group
        reject: false,
        cleanup: true,
        buffer: false,
      });
    } catch (e) {
      throw new ServerStartError(`${spec.name}: could not start ${argv[0]}: ${(e as Error).message}`, '');
    }
    const inst = new ServerInstance(spec, source, mountpoint, child, id);
    if (child.pid) inst.forget.push(register({ kind: 'process', pid: child.pid, start: processStart(child.pid) }));
    inst.forget.push(register({ kind: 'mount', path: mountpoint }));
    const deadline = Date.now() + spec.manifest.mountTimeoutMs;
    let polls = 0;
    for (;;) {
      const m = fuseMountAt(mountpoint);
      if (m) {
        inst.connection = m.minor;
        break;
      }
      if (inst.exitInfo && !(spec.manifest.daemonizes && inst.exitInfo.exitCode === 0)) {
        const how = inst.exitInfo.signal ? `was killed by ${inst.exitInfo.signal}` : `exited with code ${inst.exitInfo.exitCode}`;
        throw new ServerStartError(
          `${spec.name}: the server ${how} before mounting ${mountpoint}${inst.outputLine() ? `: ${inst.outputLine()}` : ' (no output)'}`,
          inst.stderrTail(),
        );
      }
      const elsewhere = ++polls % 12 === 0 ? inst.mountedElsewhere() : null; // every ~250 ms: it scans /proc
      if (elsewhere) {
        await inst.kill();
        abortConnection(elsewhere.minor);
        await execa('umount', ['-l', elsewhere.mountpoint], { reject: false });
        throw new ServerStartError(
          `${spec.name}: the server mounted at ${elsewhere.mountpoint} instead of ${mountpoint} (connection ${elsewhere.minor}); fusecert unmounted it${inst.outputLine() ? `; server output: ${inst.outputLine()}` : ''}`,
          inst.stderrTail(),
        );
      }
      if (Date.now() > deadline) {
        await inst.kill();
        throw new ServerStartError(
          `${spec.name}: no FUSE mount appeared at ${mountpoint} within ${spec.manifest.mountTimeoutMs} ms (mountTimeoutMs in the manifest)${inst.outputLine() ? `; server output: ${inst.outputLine()}` : ''}`,
          inst.stderrTail(),
        );
      }
      await sleep(20);
    }
    // The mount appears in mountinfo before the server has answered FUSE_INIT; until it has, the
    // negotiated state is not there to observe (a borrowed-fd BACKING_OPEN gives EPERM although
    // passthrough will be granted, SPEC §5a). A stat of the root needs a reply, and the kernel
    // holds every request until INIT is answered.
    const initDone = await within(
      stat(mountpoint).then(
        () => 'ok',
        (e: NodeJS.ErrnoException) => e.code ?? 'error',
      ),
      Math.max(0, deadline - Date.now()),
      null,
    );
    if (initDone === null) {
      await inst.kill();
      throw new ServerStartError(
        `${spec.name}: the FUSE mount at ${mountpoint} appeared but a stat of its root got no answer within ${spec.manifest.mountTimeoutMs} ms (the server did not answer FUSE_INIT or GETATTR; mountTimeoutMs in the manifest)${inst.outputLine() ? `; server output: ${inst.outputLine()}` : ''}`,
        inst.stderrTail(),
      );
    }
    inst.rootStat = initDone;
    // A helper that passed the device fd on (fusermount3) may still hold it for a moment: look
    // again once it had time to exit, and keep the owners that remain.
    // (where the kernel does not name an fd's connection, the processes started for this mount)
    const candidates = () => (child.pid ? [...pidsWhere((st) => st.pgrp === child.pid), ...processesWithEnv('FUSECERT_SERVER_ID', id)] : []);
    const first = serverPids(inst.connection, candidates());
    await sleep(first.some((p) => p !== child.pid) || first.length === 0 ? 100 : 0);
    inst.pids = serverPids(inst.connection, candidates());
    if (inst.pids.length === 0 && child.pid) inst.pids = [child.pid];
    for (const p of inst.pids) if (p !== child.pid) inst.forget.push(register({ kind: 'process', pid: p, start: processStart(p) }));
    return inst;
  }

  /** Kernel-side state of a stuck server, for a HUNG report. */
  kernelState(): { waiting: number | null; stacks: Record<string, string> } {
    const stacks: Record<string, string> = {};
    for (const pid of this.pids) {
      for (const tid of threadIds(pid)) {
        try {
          stacks[`${pid}/${tid}`] = readFileSync(`/proc/${pid}/task/${tid}/stack`, 'utf8').trim();
        } catch {
          /* exited */
        }
      }
    }
    return { waiting: connectionWaiting(this.connection), stacks };
  }

  abort(): boolean {
    return abortConnection(this.connection);
  }

  private procsGone(): boolean {
    // the launcher's exit, not the end of its output: a child it forked may hold the pipes open
    const launcherGone = this.exitInfo !== null || !this.child.pid || !alive(this.child.pid);
    return (this.spec.manifest.daemonizes || launcherGone) && this.pids.every((p) => !alive(p));
  }

  /** Wait until the processes are gone (and, with `mountToo`, the mount); true when they are. */
  private async waitGone(ms: number, mountToo: boolean): Promise<boolean> {
    const until = Date.now() + ms;
    for (;;) {
      if (this.procsGone() && (!mountToo || !fuseMountAt(this.mountpoint))) return true;
      if (Date.now() >= until) return false;
      await sleep(20);
    }
  }

  private signalAll(sig: NodeJS.Signals): void {
    const pgid = this.child.pid;
    if (pgid && this.exitInfo === null) {
      try {
        process.kill(-pgid, sig);
      } catch {
        /* gone */
      }
    }
    for (const p of this.pids) {
      try {
        if (alive(p)) process.kill(p, sig);
      } catch {
        /* gone */
      }
    }
  }

  /** The manifest's unmount method, then escalation: SIGTERM, SIGKILL, fusectl abort, lazy unmount. */
  async stop(timeoutMs = 5000): Promise<StopReport> {
    const escalations: string[] = [];
    const method = this.spec.manifest.unmount;
    if (!this.procsGone() || fuseMountAt(this.mountpoint)) {
      if (method === 'signal') this.signalAll('SIGTERM');
      else if (method === 'umount') await execa('umount', [this.mountpoint], { reject: false });
      else await execa('fusermount3', ['-u', this.mountpoint], { reject: false });
      // a server that exits but leaves its mount is handled by the unmount below, not by signals
      if (!(await this.waitGone(timeoutMs, true)) && !this.procsGone()) {
        // a `signal` server has had its SIGTERM and the whole timeout already: straight to SIGKILL
        let gone = false;
        if (method !== 'signal') {
          escalations.push('SIGTERM');
          this.signalAll('SIGTERM');
          gone = await this.waitGone(2000, false);
        }
        if (!gone) {
          escalations.push('SIGKILL');
          this.signalAll('SIGKILL');
          if (!(await this.waitGone(2000, false))) {
            escalations.push('fusectl abort');
            this.abort();
          }
        }
      }
    }
    if (fuseMountAt(this.mountpoint)) {
      // after a kill or abort the mount stays until someone unmounts it (SPEC §5a)
      escalations.push('umount');
      const r = await execa('umount', [this.mountpoint], { reject: false });
      if (r.exitCode !== 0) {
        escalations.push('umount -l');
        await execa('umount', ['-l', this.mountpoint], { reject: false });
      }
    }
    // What it forked and left running (helpers in their own session, ignoring SIGTERM): the
    // stop was not clean, and they are ended here rather than by the run's sweep.
    const forked = this.procsGone() ? this.leftovers() : [];
    if (forked.length) {
      const names = forked.map((p) => `${p} (${commOf(p)})`).join(', ');
      for (const p of forked) {
        try {
          process.kill(p, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      escalations.push(`SIGKILL to ${forked.length} process(es) the server forked and left running after it stopped: ${names}`);
      const until = Date.now() + 2000;
      while (Date.now() < until && forked.some((p) => alive(p))) await sleep(20);
    }
    if (this.exitInfo === null && this.child.pid) await within(this.exited, 3000, undefined);
    const leftPids = [...this.pids, ...forked].filter((p) => alive(p));
    const leftMount = fuseMountAt(this.mountpoint) !== null;
    if (!leftMount && leftPids.length === 0) for (const f of this.forget) f();
    return {
      exitCode: this.spec.manifest.daemonizes ? null : (this.exitInfo?.exitCode ?? null),
      signal: this.exitInfo?.signal ?? null,
      escalations,
      leftMount,
      leftPids,
    };
  }

  /** For a broken server: no politeness, just make everything go away. */
  async kill(): Promise<StopReport> {
    this.signalAll('SIGKILL');
    if (this.connection >= 0) this.abort();
    await this.waitGone(2000, false);
    return this.stop(200);
  }
}

function commOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '?';
  }
}
