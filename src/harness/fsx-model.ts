// FSX: fast-check model-based testing of one file through the mount (fc.commands + fc.asyncModelRun).
// The model is the file's bytes and the flags each fd was opened with; every command runs against the
// mount and updates the model; reads, fstat and the final whole-file comparison (through the mount and,
// for mirror servers, of the backing file) check the mount against the model.
//
// mmap: the test process never touches mapped memory. Map operations are delegated to one MapperChild
// per clause (child.ts): in FSX-001 each MapWrite maps the file's current size in the child, stores,
// msync(MS_SYNC)s and unmaps; in FSX-002 the child holds one MAP_SHARED mapping of MAP_LEN bytes for the
// whole run and the model run interleaves stores, loads and msync on it with I/O on two fds. Map
// accesses stay below the model's size (touching pages beyond EOF is SIGBUS by definition).
import fc from 'fast-check';
import { open, writeFile, unlink, readFile, type FileHandle } from 'node:fs/promises';
import { write as fsWrite, close as fsClose } from 'node:fs';
import { promisify } from 'node:util';
import { pattern } from '../mount/tree.ts';
import { spliceAsync, pipe2Async, fallocateAsync, O, FALLOC_FL } from '../sys/index.ts';
import type { Mount } from './clause-mount.ts';
import { MapperChild, MapperError } from './child.ts';
import { ClauseFailure, expectBytes, check, errnoOf } from './expect.ts';
import { preadFull, applyWrite, applyTruncate } from './files.ts';

export type FdName = 'a' | 'b';

export interface FsxModel {
  data: Buffer;
  flags: Record<FdName, number>;
}

export interface FsxReal {
  mount: Mount;
  rel: string;
  fds: Partial<Record<FdName, FileHandle>>;
  child: MapperChild;
  childFd: number;
  /** FSX-002: the child's long-lived mapping */
  map: number | null;
  signal: AbortSignal;
  unsupported: Set<string>;
}

export const MAP_LEN = 2 * 1048576;
const BOUNDARIES = [0, 1, 4095, 4096, 4097, 65535, 131071, 131072, 131073, 1048575, 1048576, 1048577];
const offsetArb = fc.oneof(
  { weight: 3, arbitrary: fc.integer({ min: 0, max: 1_300_000 }) },
  { weight: 2, arbitrary: fc.tuple(fc.constantFrom(...BOUNDARIES), fc.integer({ min: -3, max: 3 })).map(([b, d]) => Math.max(0, b + d)) },
);
const lenArb = fc.oneof(
  { weight: 3, arbitrary: fc.integer({ min: 1, max: 8192 }) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 300_000 }) },
  { weight: 1, arbitrary: fc.constantFrom(4096, 131072, 131073, 65536) },
);
const REOPEN_FLAGS: [string, number][] = [
  ['O_RDWR', O.O_RDWR],
  ['O_RDWR|O_APPEND', O.O_RDWR | O.O_APPEND],
  ['O_RDWR|O_SYNC', O.O_RDWR | O.O_SYNC],
  ['O_RDWR|O_DSYNC', O.O_RDWR | O.O_DSYNC],
  ['O_RDWR|O_TRUNC', O.O_RDWR | O.O_TRUNC],
  ['O_RDWR|O_NOATIME', O.O_RDWR | O.O_NOATIME],
];

function live(r: FsxReal): void {
  if (r.signal.aborted) throw new ClauseFailure('clause deadline reached: FSX run stopped');
}
const fd = (r: FsxReal, n: FdName) => r.fds[n]!;
const size = (m: FsxModel) => m.data.length;

abstract class Cmd implements fc.AsyncCommand<FsxModel, FsxReal> {
  check(_m: Readonly<FsxModel>): boolean {
    return true;
  }
  abstract run(m: FsxModel, r: FsxReal): Promise<void>;
  abstract toString(): string;
}

class Pwrite extends Cmd {
  constructor(
    readonly fd: FdName,
    readonly off: number,
    readonly len: number,
    readonly seed: number,
  ) {
    super();
  }
  async run(m: FsxModel, r: FsxReal) {
    live(r);
    const data = pattern(this.seed, this.len);
    // Linux: pwrite on an O_APPEND fd appends, whatever the offset
    const at = m.flags[this.fd] & O.O_APPEND ? size(m) : this.off;
    const { bytesWritten } = await fd(r, this.fd).write(data, 0, data.length, this.off);
    check(bytesWritten === this.len, `${this}: wrote ${bytesWritten} bytes`);
    m.data = applyWrite(m.data, at, data);
  }
  toString() {
    return `pwrite(${this.fd}, off=${this.off}, len=${this.len}, seed=${this.seed})`;
  }
}

class Pread extends Cmd {
  constructor(
    readonly fd: FdName,
    readonly off: number,
    readonly len: number,
  ) {
    super();
  }
  async run(m: FsxModel, r: FsxReal) {
    live(r);
    const got = await preadFull(fd(r, this.fd), this.off, this.len);
    expectBytes(got, m.data.subarray(this.off, this.off + this.len), `${this}`);
  }
  toString() {
    return `pread(${this.fd}, off=${this.off}, len=${this.len})`;
  }
}

class Fstat extends Cmd {
  constructor(readonly fd: FdName) {
    super();
  }
  async run(m: FsxModel, r: FsxReal) {
    live(r);
    const st = await fd(r, this.fd).stat();
    check(st.size === size(m), `${this}: size ${st.size}, model says ${size(m)}`);
  }
  toString() {
    return `fstat(${this.fd})`;
  }
}

class Truncate extends Cmd {
  constructor(
    readonly fd: FdName,
    readonly size: number,
  ) {
    super();
  }
  async run(m: FsxModel, r: FsxReal) {
    live(r);
    await fd(r, this.fd).truncate(this.size);
    m.data = applyTruncate(m.data, this.size);
  }
  toString() {
    return `ftruncate(${this.fd}, ${this.size})`;
  }
}

class Append extends Cmd {
  constructor(
    readonly len: number,
    readonly seed: number,
  ) {
    super();
  }
  async run(m: FsxModel, r: FsxReal) {
    live(r);
    const data = pattern(this.seed, this.len);
    const fh = await open(r.mount.path(r.rel), O.O_WRONLY | O.O_APPEND);
    try {
      const { bytesWritten } = await fh.write(data);
      check(bytesWritten === this.len, `${this}: wrote ${bytesWritten} bytes`);
    } finally {
      await fh.close();
    }
    m.data = applyWrite(m.data, size(m), data);
  }
  toString() {
    return `append(new O_APPEND fd, len=${this.len}, seed=${this.seed})`;
  }
}

const writeP = promisify(fsWrite);
const closeP = promisify(fsClose);

class SpliceWrite extends Cmd {
  constructor(
    readonly fd: FdName,
    readonly off: number,
    readonly len: number,
    readonly seed: number,
  ) {
    super();
  }
  check(m: Readonly<FsxModel>) {
    return !(m.flags[this.fd] & O.O_APPEND); // the kernel refuses splice into O_APPEND files (SPL-006)
  }
  async run(m: FsxModel, r: FsxReal) {
    live(r);
    const data = pattern(this.seed, this.len);
    const [pr, pw] = await pipe2Async();
    try {
      let put = 0;
      while (put < data.length) put += (await writeP(pw, data, put, data.length - put, null)).bytesWritten;
      let moved = 0;
      while (moved < this.len) {
        const n = await spliceAsync(pr, null, fd(r, this.fd).fd, this.off + moved, this.len - moved);
        check(n > 0, `${this}: splice returned 0 after ${moved} bytes`);
        moved += n;
      }
    } finally {
      await closeP(pr).catch(() => {});
      await closeP(pw).catch(() => {});
    }
    m.data = applyWrite(m.data, this.off, data);
  }
  toString() {
    return `splice-write(${this.fd}, off=${this.off}, len=${this.len}, seed=${this.seed})`;
  }
}

class Falloc extends Cmd {
  constructor(
    readonly kind: 'keep-size' | 'punch-hole',
    readonly off: number,
    readonly len: number,
  ) {
    super();
  }
  async run(m: FsxModel, r: FsxReal) {
    live(r);
    const mode = this.kind === 'keep-size' ? FALLOC_FL.FALLOC_FL_KEEP_SIZE : FALLOC_FL.FALLOC_FL_PUNCH_HOLE | FALLOC_FL.FALLOC_FL_KEEP_SIZE;
    try {
      await fallocateAsync(fd(r, 'a').fd, mode, this.off, this.len);
    } catch (e) {
      const code = errnoOf(e);
      if (code === 'EOPNOTSUPP' || code === 'ENOSYS') {
        r.unsupported.add(`fallocate ${this.kind}: ${code}`);
        return;
      }
      throw new ClauseFailure(`${this}: failed with ${code}`);
    }
    if (this.kind === 'punch-hole') m.data.fill(0, Math.min(this.off, size(m)), Math.min(this.off + this.len, size(m)));
  }
  toString() {
    return `fallocate(a, ${this.kind}, off=${this.off}, len=${this.len})`;
  }
}

class Reopen extends Cmd {
  constructor(
    readonly fd: FdName,
    readonly flags: [string, number],
  ) {
    super();
  }
  async run(m: FsxModel, r: FsxReal) {
    live(r);
    await r.fds[this.fd]!.close();
    r.fds[this.fd] = await open(r.mount.path(r.rel), this.flags[1]);
    m.flags[this.fd] = this.flags[1];
    if (this.flags[1] & O.O_TRUNC) m.data = Buffer.alloc(0);
  }
  toString() {
    return `close+reopen(${this.fd}, ${this.flags[0]})`;
  }
}

/** FSX-001: map the current size, store, msync(MS_SYNC), unmap, in the child. */
class MapWrite extends Cmd {
  constructor(
    readonly off: number,
    readonly len: number,
    readonly seed: number,
  ) {
    super();
  }
  check(m: Readonly<FsxModel>) {
    return size(m) > 0;
  }
  async run(m: FsxModel, r: FsxReal) {
    live(r);
    const off = this.off % size(m);
    const len = Math.min(this.len, size(m) - off);
    const data = pattern(this.seed, len);
    await r.child.mapwrite(r.childFd, size(m), off, data);
    m.data = applyWrite(m.data, off, data);
  }
  toString() {
    return `mmap-write(off=${this.off} mod size, len=${this.len}, seed=${this.seed}) + msync`;
  }
}

/** FSX-002: a store into the long-lived shared mapping (no msync). */
class MapStore extends Cmd {
  constructor(
    readonly off: number,
    readonly len: number,
    readonly seed: number,
  ) {
    super();
  }
  check(m: Readonly<FsxModel>) {
    return size(m) > 0;
  }
  async run(m: FsxModel, r: FsxReal) {
    live(r);
    const lim = Math.min(size(m), MAP_LEN);
    const off = this.off % lim;
    const len = Math.min(this.len, lim - off);
    const data = pattern(this.seed, len);
    await r.child.write(r.map!, off, data);
    m.data = applyWrite(m.data, off, data);
  }
  toString() {
    return `map-store(off=${this.off} mod size, len=${this.len}, seed=${this.seed})`;
  }
}

class MapLoad extends Cmd {
  constructor(
    readonly off: number,
    readonly len: number,
  ) {
    super();
  }
  check(m: Readonly<FsxModel>) {
    return size(m) > 0;
  }
  async run(m: FsxModel, r: FsxReal) {
    live(r);
    const lim = Math.min(size(m), MAP_LEN);
    const off = this.off % lim;
    const len = Math.min(this.len, lim - off);
    expectBytes(await r.child.read(r.map!, off, len), m.data.subarray(off, off + len), `map-load(off=${off}, len=${len}) of the shared mapping`);
  }
  toString() {
    return `map-load(off=${this.off} mod size, len=${this.len})`;
  }
}

class MapSync extends Cmd {
  async run(_m: FsxModel, r: FsxReal) {
    live(r);
    await r.child.msync(r.map!);
  }
  toString() {
    return 'msync(MS_SYNC)';
  }
}

export function fsxCommands(twoFds: boolean) {
  const fdArb: fc.Arbitrary<FdName> = twoFds ? fc.constantFrom<FdName>('a', 'b') : fc.constant<FdName>('a');
  const seed = fc.integer({ min: 1, max: 1_000_000 });
  const common = [
    fc.tuple(fdArb, offsetArb, lenArb, seed).map(([f, o, l, s]) => new Pwrite(f, o, l, s)),
    fc.tuple(fdArb, offsetArb, lenArb).map(([f, o, l]) => new Pread(f, o, l)),
    fdArb.map((f) => new Fstat(f)),
    fc.tuple(fdArb, offsetArb).map(([f, s]) => new Truncate(f, s)),
    fc.tuple(lenArb, seed).map(([l, s]) => new Append(l, s)),
    fc.tuple(fdArb, offsetArb, fc.integer({ min: 1, max: 65536 }), seed).map(([f, o, l, s]) => new SpliceWrite(f, o, l, s)),
    fc.tuple(fc.constantFrom<'keep-size' | 'punch-hole'>('keep-size', 'punch-hole'), offsetArb, lenArb).map(([k, o, l]) => new Falloc(k, o, l)),
    fc.tuple(fdArb, fc.constantFrom(...REOPEN_FLAGS)).map(([f, fl]) => new Reopen(f, fl)),
  ];
  const maps = twoFds
    ? [
        fc.tuple(offsetArb, lenArb, seed).map(([o, l, s]) => new MapStore(o, l, s)),
        fc.tuple(offsetArb, lenArb).map(([o, l]) => new MapLoad(o, l)),
        fc.constant(new MapSync()),
      ]
    : [fc.tuple(offsetArb, lenArb, seed).map(([o, l, s]) => new MapWrite(o, l, s))];
  const arbs = [...common, ...maps] as fc.Arbitrary<fc.AsyncCommand<FsxModel, FsxReal>>[];
  return fc.commands(arbs, { maxCommands: 25 }) as fc.Arbitrary<Iterable<fc.AsyncCommand<FsxModel, FsxReal>>>;
}

export interface FsxOptions {
  mount: Mount;
  signal: AbortSignal;
  twoFds: boolean;
  seed: number;
  numRuns: number;
  timeLimitMs: number;
  /** the one-line command that replays this clause */
  replay: string;
  initialSize?: number;
}

export interface FsxOutcome {
  runs: number;
  unsupported: string[];
  failure: string | null;
}

/** Run the model-based property; on failure the message carries the shrunk sequence, seed and replay. */
export async function runFsx(o: FsxOptions): Promise<FsxOutcome> {
  const child = await MapperChild.start(o.signal);
  const unsupported = new Set<string>();
  let runNo = 0;
  let runs = 0;
  try {
    const prop = fc.asyncProperty(fsxCommands(o.twoFds), async (cmds) => {
      const rel = `fsx-${o.twoFds ? 2 : 1}-${process.pid}-${runNo++}.bin`;
      const p = o.mount.path(rel);
      const init = pattern(o.seed + runNo, o.initialSize ?? 300_000);
      await writeFile(p, init);
      const real: FsxReal = { mount: o.mount, rel, fds: {}, child, childFd: -1, map: null, signal: o.signal, unsupported };
      const model: FsxModel = { data: Buffer.from(init), flags: { a: O.O_RDWR, b: O.O_RDWR } };
      try {
        real.fds.a = await open(p, O.O_RDWR);
        if (o.twoFds) real.fds.b = await open(p, O.O_RDWR);
        real.childFd = await child.open(p, O.O_RDWR);
        if (o.twoFds) real.map = await child.map(real.childFd, MAP_LEN);
        await fc.asyncModelRun(() => ({ model, real }), cmds);
        // the whole file, through a new fd and in the backing file
        const fh = await open(p, 'r');
        try {
          const st = await fh.stat();
          check(st.size === model.data.length, `after the sequence, fstat on a new fd showed size ${st.size}, model says ${model.data.length}`);
          expectBytes(await preadFull(fh, 0, model.data.length + 1), model.data, 'after the sequence, the whole file read through a new fd');
        } finally {
          await fh.close();
        }
        // The backing file is compared where a local filesystem guarantees it: stores into the
        // shared mapping reach the file at msync (SPEC §5a), not while the pages are still dirty.
        if (real.map !== null) await child.msync(real.map);
        if (o.mount.claims.mirror)
          expectBytes(
            await readFile(o.mount.backing(rel)),
            model.data,
            'after the sequence (and an msync of the shared mapping), the backing file read directly',
          );
      } finally {
        if (real.map !== null) await child.unmap(real.map).catch(() => {});
        if (real.childFd >= 0) await child.closeFd(real.childFd).catch(() => {});
        for (const f of Object.values(real.fds)) await f?.close().catch(() => {});
        if (!o.signal.aborted) await unlink(p).catch(() => {});
      }
      runs++;
    });
    const details = await fc.check(prop, { seed: o.seed, numRuns: o.numRuns, interruptAfterTimeLimit: o.timeLimitMs, markInterruptAsFailure: false });
    if (!details.failed) return { runs, unsupported: [...unsupported], failure: null };
    const err = details.errorInstance as Error | undefined;
    const seq = details.counterexample
      ? String(details.counterexample[0])
          .replace(/\s*\/\*replayPath=.*?\*\/\s*/g, '')
          .trim()
      : '';
    const nOps = seq === '' ? 0 : seq.split(/,(?![^()]*\))/).length;
    const cause = err instanceof MapperError ? `${err.code}: ${err.message}` : (err?.message ?? String(details.errorInstance));
    const ops =
      nOps === 0
        ? 'no operation at all (creating the file with its initial bytes and reading it back fails)'
        : `${nOps} operation${nOps === 1 ? '' : 's'}: [${seq}]`;
    return {
      runs,
      unsupported: [...unsupported],
      failure:
        `${cause} | shrunk (${details.numShrinks} shrinks) to ${ops}, on a file created with ${o.initialSize ?? 300_000} model bytes` +
        ` | fast-check seed ${details.seed}, path ${details.counterexamplePath ?? '?'} | replay: ${o.replay}`,
    };
  } finally {
    await child.close();
  }
}
