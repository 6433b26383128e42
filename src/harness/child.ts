// mmap work in a child process (see mapper-child.ts for why). The test process sends requests and
// awaits replies; it never touches mapped memory. A child that dies (SIGBUS, SIGSEGV, ...) fails
// the pending request with a ClauseFailure naming the signal and the operation; the child is killed
// when the clause's AbortSignal fires (deadline) or when close() is called.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { nodeArgs } from '../../bin/bundle.mjs';
import { ClauseFailure } from './expect.ts';
import type { MapperRequest, MapperReply, TimedIo } from './mapper-child.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const SCRIPT = path.join(import.meta.dirname, 'mapper-child.ts');

/** An errno from the child's syscall (mmap, msync, open): a real answer of the kernel, not a crash. */
export class MapperError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'MapperError';
  }
}

export class MapperChild {
  private pending: { resolve: (v: unknown) => void; reject: (e: Error) => void; what: string }[] = [];
  private death: Error | null = null;
  private stderr = '';
  private current = 'startup';

  private constructor(private readonly proc: ChildProcess) {}

  /** the current use's deadline: killed when it fires (a pooled child is given a new one per use) */
  private detach: () => void = () => {};
  private watch(signal?: AbortSignal): void {
    this.detach();
    this.detach = () => {};
    if (!signal) return;
    if (signal.aborted) {
      this.proc.kill('SIGKILL');
      return;
    }
    const kill = () => this.proc.kill('SIGKILL');
    signal.addEventListener('abort', kill, { once: true });
    this.detach = () => signal.removeEventListener('abort', kill);
  }

  /** Whether the child can serve another clause: alive and with no request in flight. */
  get idle(): boolean {
    return this.death === null && this.pending.length === 0 && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** Keep (or stop keeping) the worker's event loop alive for this child. */
  private hold(on: boolean): void {
    for (const h of [this.proc, this.proc.stdin, this.proc.stdout, this.proc.stderr] as unknown as ({ ref?(): void; unref?(): void } | null)[])
      on ? h?.ref?.() : h?.unref?.();
  }

  static async start(signal?: AbortSignal): Promise<MapperChild> {
    // about 25 of these per certification: as a bundle (bin/bundle.mjs), a quarter of tsx's start-up CPU
    const proc = spawn(process.execPath, await nodeArgs(SCRIPT), { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
    const c = new MapperChild(proc);
    proc.stderr!.on('data', (d: Buffer) => {
      c.stderr = (c.stderr + d.toString()).slice(-2000);
    });
    const rl = createInterface({ input: proc.stdout! });
    rl.on('line', (line) => {
      const p = c.pending.shift();
      if (!p) return;
      const r = JSON.parse(line) as MapperReply;
      if (r.ok) p.resolve(r.value);
      else p.reject(new MapperError(r.code, r.message));
    });
    proc.on('exit', (code, sig) => {
      const how = sig ? `was killed by ${sig}` : `exited with code ${code}`;
      c.death = new ClauseFailure(
        `the mmap child process ${how} during ${c.current}${c.stderr ? `; its stderr: ${c.stderr.trim().split('\n').slice(-3).join(' | ')}` : ''}`,
      );
      for (const p of c.pending.splice(0)) p.reject(c.death);
    });
    proc.stdin!.on('error', () => {});
    c.watch(signal);
    await new Promise<unknown>((resolve, reject) => c.pending.push({ resolve, reject, what: 'startup' }));
    return c;
  }

  get pid(): number {
    return this.proc.pid!;
  }

  /** Taken from the pool for a clause: its deadline, and the worker waits for it again. */
  take(signal?: AbortSignal): void {
    this.hold(true);
    this.watch(signal);
  }

  /** Ready to go back to the pool: idle, and reset (every mapping unmapped, every fd closed). */
  async giveBack(): Promise<boolean> {
    if (!this.idle) return false;
    try {
      await this.call({ op: 'reset' }, 'a reset after the clause');
    } catch {
      return false;
    }
    if (!this.idle) return false;
    this.detach();
    this.current = 'waiting in the pool';
    this.hold(false);
    return true;
  }

  /** Send one request; resolves with its value, rejects with MapperError (errno) or ClauseFailure (death). */
  call<T = unknown>(req: MapperRequest, what?: string): Promise<T> {
    if (this.death) return Promise.reject(this.death);
    this.current = what ?? describe(req);
    return new Promise<T>((resolve, reject) => {
      this.pending.push({ resolve: resolve as (v: unknown) => void, reject, what: this.current });
      this.proc.stdin!.write(JSON.stringify(req) + '\n');
    });
  }

  // Convenience wrappers
  open(p: string, flags: number): Promise<number> {
    return this.call<number>({ op: 'open', path: p, flags });
  }
  closeFd(fd: number): Promise<void> {
    return this.call({ op: 'close', fd }).then(() => undefined);
  }
  map(fd: number, length: number, flags?: number, prot?: number, offset = 0): Promise<number> {
    return this.call<number>({ op: 'map', fd, length, flags, prot, offset });
  }
  unmap(map: number): Promise<void> {
    return this.call({ op: 'unmap', map }).then(() => undefined);
  }
  async read(map: number, off: number, len: number): Promise<Buffer> {
    return Buffer.from(await this.call<string>({ op: 'read', map, off, len }), 'base64');
  }
  write(map: number, off: number, data: Buffer): Promise<void> {
    return this.call({ op: 'write', map, off, data: data.toString('base64') }).then(() => undefined);
  }
  msync(map: number, flags?: number): Promise<void> {
    return this.call({ op: 'msync', map, flags }).then(() => undefined);
  }
  fstat(fd: number): Promise<{ size: number; blocks: number; mtimeNs: string; ctimeNs: string }> {
    return this.call({ op: 'fstat', fd });
  }
  mapwrite(fd: number, length: number, off: number, data: Buffer): Promise<void> {
    return this.call({ op: 'mapwrite', fd, length, off, data: data.toString('base64') }).then(() => undefined);
  }

  /** Timed sequential reads of a whole file (PRF). */
  seqread(p: string, chunk: number): Promise<TimedIo> {
    return this.call({ op: 'seqread', path: p, chunk }, `sequential reads of ${p}`);
  }
  /** Timed sequential writes into a fresh file (PRF). */
  seqwrite(p: string, chunk: number, chunks: number): Promise<TimedIo> {
    return this.call({ op: 'seqwrite', path: p, chunk, chunks }, `sequential writes to ${p}`);
  }

  /** Stop the child (closing stdin lets it exit; SIGKILL if it does not within 2 s). */
  async close(): Promise<void> {
    this.detach();
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.hold(true);
    const exited = new Promise<void>((r) => this.proc.once('exit', () => r()));
    this.proc.stdin!.end();
    const t = setTimeout(() => this.proc.kill('SIGKILL'), 2000);
    await exited;
    clearTimeout(t);
  }
}

function describe(req: MapperRequest): string {
  switch (req.op) {
    case 'open':
      return `open(${req.path})`;
    case 'map':
      return `mmap(fd ${req.fd}, ${req.length} bytes)`;
    case 'read':
      return `a load of ${req.len} bytes at offset ${req.off} of the mapping`;
    case 'write':
    case 'mapwrite':
      return `a store of ${Buffer.from(req.data, 'base64').length} bytes at offset ${req.off} of the mapping`;
    case 'msync':
      return 'msync';
    default:
      return req.op;
  }
}

/**
 * Children that served a clause and were reset (no mapping, no fd left), ready for the next one:
 * a child's start is ~80 ms of CPU and a spawn from the worker, and a certification asks for ~25.
 * Unreferenced while they wait: an idle child never keeps its worker alive, and exits with it
 * (its stdin closes).
 */
const pool: MapperChild[] = [];
const POOL_MAX = 2;

/**
 * Run fn with a MapperChild killed at the clause deadline (signal): a pooled one when there is
 * one, else a fresh one. After fn it goes back to the pool only if it is alive, has no request in
 * flight and its reset succeeded; otherwise it is closed.
 */
export async function withMapper<T>(signal: AbortSignal, fn: (c: MapperChild) => Promise<T>): Promise<T> {
  let c: MapperChild | undefined;
  while (!c && pool.length) {
    const p = pool.pop()!;
    if (p.idle) c = p;
  }
  if (c) c.take(signal);
  else c = await MapperChild.start(signal);
  let reusable = false;
  try {
    const r = await fn(c);
    reusable = true;
    return r;
  } finally {
    if (reusable && pool.length < POOL_MAX && (await c.giveBack())) pool.push(c);
    else await c.close();
  }
}
