// The child side of MapperChild (child.ts): a small process that does the mmap work for a clause.
// Touching mapped memory of a file on a FUSE mount faults into the kernel and maybe the server;
// such a fault cannot be interrupted, and a SIGBUS kills the toucher. So the test process never
// touches a mapping itself: it sends this child one JSON request per line on stdin and reads one
// JSON reply per line on stdout. Sync FFI calls are fine here: the parent kills this process at
// the clause deadline, and a fatal signal here is reported by the parent as a failure naming it.
import { createInterface } from 'node:readline';
import { fstatSync } from 'node:fs';
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
  /** map the fd's first `length` bytes shared, store data at off, msync(MS_SYNC), unmap: one FSX operation */
  | { op: 'mapwrite'; fd: number; length: number; off: number; data: string };

export type MapperReply = { ok: true; value?: unknown } | { ok: false; code: string; message: string };

const maps = new Map<number, sys.Mapping>();
let nextMap = 1;

function handle(req: MapperRequest): unknown {
  switch (req.op) {
    case 'open':
      return sys.open(req.path, req.flags, 0o644);
    case 'close':
      sys.close(req.fd);
      return null;
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
  }
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
