// The child side of MapperChild (child.ts): a small process that does the mmap work for a clause.
// Touching mapped memory of a file on a FUSE mount faults into the kernel and maybe the server;
// such a fault cannot be interrupted, and a SIGBUS kills the toucher. So the test process never
// touches a mapping itself: it sends this child one JSON request per line on stdin and reads one
// JSON reply per line on stdout. Sync FFI calls are fine here: the parent kills this process at
// the clause deadline, and a fatal signal here is reported by the parent as a failure naming it.
// For the same reason PRF's timed sequential I/O runs here: synchronous read(2)/write(2) in a loop
// measure the kernel's path; async calls in a test worker mostly measure libuv's thread hops.
import { createInterface } from 'node:readline';
import { fstatSync, openSync, readSync, writeSync, closeSync } from 'node:fs';
import * as sys from '../sys/index.ts';

export type MapperRequest =
  | { op: 'open'; path: string; flags: number }
  | { op: 'close'; fd: number }
  | { op: 'map'; fd: number; length: number; prot?: number; flags?: number; offset?: number }
  | { op: 'unmap'; map: number }
  | { op: 'read'; map: number; off: number; len: number }
  | { op: 'write'; map: number; off: number; data: string }
  | { op: 'msync'; map: number; flags?: number; off?: number; len?: number }
  | { op: 'fstat'; fd: number }
  /** unmap every mapping and close every fd this child opened (before it serves another clause): how many there were */
  | { op: 'reset' }
  /** map the fd's first `length` bytes shared, store data at off, msync(MS_SYNC), unmap: one FSX operation */
  | { op: 'mapwrite'; fd: number; length: number; off: number; data: string }
  /** read the whole file with `chunk`-sized pread(2)s; open and close included in the time */
  | { op: 'seqread'; path: string; chunk: number }
  /** write `chunks` times a `chunk`-sized buffer into a fresh file; open and close included */
  | { op: 'seqwrite'; path: string; chunk: number; chunks: number };

/** What a timed sequential I/O request measured. */
export interface TimedIo {
  seconds: number;
  bytes: number;
}

export type MapperReply = { ok: true; value?: unknown } | { ok: false; code: string; message: string };

const maps = new Map<number, sys.Mapping>();
let nextMap = 1;
/** fds opened by 'open' and not closed yet */
const fds = new Set<number>();

function handle(req: MapperRequest): unknown {
  switch (req.op) {
    case 'open': {
      const fd = sys.open(req.path, req.flags, 0o644);
      fds.add(fd);
      return fd;
    }
    case 'close':
      sys.close(req.fd);
      fds.delete(req.fd);
      return null;
    case 'reset': {
      const left = { maps: maps.size, fds: fds.size };
      for (const m of maps.values()) m.munmap();
      maps.clear();
      for (const fd of fds) sys.close(fd);
      fds.clear();
      return left;
    }
    case 'map': {
      const m = sys.mmap(req.fd, req.length, req.prot ?? sys.PROT.PROT_READ | sys.PROT.PROT_WRITE, req.flags ?? sys.MAP.MAP_SHARED, req.offset ?? 0);
      const id = nextMap++;
      maps.set(id, m);
      return id;
    }
    case 'unmap':
      mapping(req.map).munmap();
      maps.delete(req.map);
      return null;
    case 'read':
      return mapping(req.map).read(req.off, req.len).toString('base64');
    case 'write':
      mapping(req.map).write(req.off, Buffer.from(req.data, 'base64'));
      return null;
    case 'msync':
      mapping(req.map).msync(req.flags ?? sys.MS.MS_SYNC, req.off, req.len);
      return null;
    case 'fstat': {
      const st = fstatSync(req.fd, { bigint: true });
      return { size: Number(st.size), blocks: Number(st.blocks), mtimeNs: st.mtimeNs.toString(), ctimeNs: st.ctimeNs.toString() };
    }
    case 'mapwrite': {
      const m = sys.mmap(req.fd, req.length, sys.PROT.PROT_READ | sys.PROT.PROT_WRITE, sys.MAP.MAP_SHARED, 0);
      try {
        m.write(req.off, Buffer.from(req.data, 'base64'));
        m.msync(sys.MS.MS_SYNC);
      } finally {
        m.munmap();
      }
      return null;
    }
    case 'seqread':
      return timed(
        req.path,
        'r',
        (fd, buf) => {
          let total = 0;
          for (let n; (n = readSync(fd, buf, 0, buf.length, total)) > 0; ) total += n;
          return total;
        },
        req.chunk,
      );
    case 'seqwrite':
      return timed(
        req.path,
        'w',
        (fd, buf) => {
          let total = 0;
          for (let i = 0; i < req.chunks; i++) total += writeSync(fd, buf, 0, buf.length, total);
          return total;
        },
        req.chunk,
      );
  }
}

function timed(path: string, mode: 'r' | 'w', io: (fd: number, buf: Buffer) => number, chunk: number): TimedIo {
  const buf = Buffer.alloc(chunk, 0x5a);
  const t0 = process.hrtime.bigint();
  const fd = openSync(path, mode);
  let bytes: number;
  try {
    bytes = io(fd, buf);
  } finally {
    closeSync(fd);
  }
  return { seconds: Number(process.hrtime.bigint() - t0) / 1e9, bytes };
}

function mapping(id: number): sys.Mapping {
  const m = maps.get(id);
  if (!m) throw new Error(`no mapping ${id}`);
  return m;
}

const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  let reply: MapperReply;
  try {
    reply = { ok: true, value: handle(JSON.parse(line) as MapperRequest) };
  } catch (e) {
    const err = e as { code?: string; message?: string };
    reply = { ok: false, code: err.code ?? 'ERROR', message: err.message ?? String(e) };
  }
  process.stdout.write(JSON.stringify(reply) + '\n');
});
rl.on('close', () => process.exit(0));
process.stdout.write(JSON.stringify({ ok: true, value: 'ready' }) + '\n');
