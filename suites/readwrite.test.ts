import { open, readFile, writeFile, truncate, unlink } from 'node:fs/promises';
import { constants as C } from 'node:fs';
import {
  clause,
  forEachVariant,
  check,
  fail,
  expectBytes,
  errnoOf,
  pattern,
  loadTree,
  expectFile,
  preadFull,
  applyWrite,
  applyTruncate,
  requestsDuring,
  quiesce,
  serverIoCause,
  counts,
  type Mount,
} from '../src/harness/index.ts';
import { countOf, type EvidenceWindow } from '../src/evidence/index.ts';
import { SYNC_SYSCALLS } from '../src/evidence/index.ts';
import { lseekAsync, fallocateAsync, copyFileRangeAsync, fsyncAsync, fdatasyncAsync, SEEK, FALLOC_FL } from '../src/sys/index.ts';
import {
  aioRun,
  alignedBuffer,
  preadv2Async,
  pwritev2Async,
  openAsync,
  closeAsync,
  preadAsync,
  pwriteAsync,
  O,
  RWF,
  type AioOp,
  type AlignedBuffer,
} from '../src/sys/index.ts';

/** The mount claims that every open of a regular file is in passthrough with its data on the backing file. */
const fullPassthrough = (m: Mount) => m.claims.passthrough && !m.claims.directIo && (m.claims.passthroughIo ?? 'rw') === 'rw' && m.evidence !== null;

/** On a full-passthrough mount, fail when the window sent FUSE_READ/FUSE_WRITE: the data went through the server. */
function expectBackingPath(win: EvidenceWindow, what: string): void {
  const n = countOf(win.requests, 'FUSE_READ') + countOf(win.requests, 'FUSE_WRITE');
  if (n > 0) fail(`${what} sent ${counts(win.requests, ['FUSE_READ', 'FUSE_WRITE'])} to the server: ${serverIoCause(win)}`);
}

const tree = loadTree('basic');

forEachVariant({}, (mount) => {
  clause({
    id: 'RW-001',
    level: 'MUST',
    title: 'sequential read of a known tree equals the model',
    mount,
    body: async (t) => {
      let bytes = 0;
      for (const f of tree.files) {
        const got = await readFile(mount.path(f.path));
        expectBytes(got, pattern(f.seed, f.size), `sequential read of ${f.path}`);
        bytes += got.length;
      }
      t.note('files', tree.files.length);
      t.note('bytes', bytes);
    },
  });

  clause({
    id: 'RW-002',
    level: 'MUST',
    title: 'pwrite/pread at unaligned offsets crossing page and max_write boundaries',
    mount,
    body: async (t) => {
      const size = 3 * 1048576 + 4099;
      const model = pattern(77, size);
      const fh = await open(mount.path('rw-002.bin'), 'w+');
      try {
        // writes at unaligned offsets, each crossing a page boundary and some a 128 KiB / 1 MiB boundary
        const chunks = [
          [0, 4097],
          [4095, 3],
          [131071, 131075],
          [1048573, 262147],
          [size - 5000, 5000],
          [8191, 1048576 + 1],
        ];
        const written = Buffer.alloc(size);
        for (const [off, len] of chunks) {
          const { bytesWritten } = await fh.write(model, off, len, off);
          check(bytesWritten === len, `pwrite(${len} bytes at ${off}) wrote ${bytesWritten}`);
          model.copy(written, off, off, off + len);
        }
        for (const [off, len] of [...chunks, [1, size - 2]]) {
          const buf = Buffer.alloc(len);
          const { bytesRead } = await fh.read(buf, 0, len, off);
          check(bytesRead === len, `pread(${len} bytes at ${off}) returned ${bytesRead}`);
          expectBytes(buf, written.subarray(off, off + len), `pread(${len} at ${off})`);
        }
        t.note('size', size);
      } finally {
        await fh.close();
      }
    },
  });

  clause({
    id: 'RW-003',
    level: 'MUST',
    title: 'short reads at EOF and reads past EOF',
    mount,
    body: async (t) => {
      const f = tree.files.find((x) => x.size === 4097)!;
      const fh = await open(mount.path(f.path), 'r');
      try {
        const buf = Buffer.alloc(8192);
        const a = await fh.read(buf, 0, 8192, 4000);
        check(a.bytesRead === f.size - 4000, `read of 8192 bytes at 4000 in a ${f.size}-byte file returned ${a.bytesRead}, expected ${f.size - 4000}`);
        expectBytes(buf.subarray(0, a.bytesRead), pattern(f.seed, f.size).subarray(4000), 'short read at EOF');
        const b = await fh.read(buf, 0, 100, f.size);
        check(b.bytesRead === 0, `read at EOF returned ${b.bytesRead} bytes, expected 0`);
        const c = await fh.read(buf, 0, 100, f.size + 1_000_000);
        check(c.bytesRead === 0, `read 1 MB past EOF returned ${c.bytesRead} bytes, expected 0`);
        t.note('short read', a.bytesRead);
      } finally {
        await fh.close();
      }
    },
  });

  clause({
    id: 'RW-004',
    level: 'MUST',
    title: 'holes read as zeros',
    mount,
    repro: [
      { op: 'open', fd: 'f', path: 'rw-004.bin', flags: ['O_RDWR', 'O_CREAT', 'O_TRUNC'] },
      { op: 'pwrite', fd: 'f', off: 1048579, seed: 404, len: 100 },
      { op: 'pread', fd: 'f', off: 0, len: 1048579 + 100 + 10 },
      { op: 'pread', fd: 'f', off: 4090, len: 10 },
      { op: 'ftruncate', fd: 'f', size: 3 * 1048576 + 5 },
      { op: 'pread', fd: 'f', off: 1048578, len: 3 * 1048576 + 5 - 1048578 + 10 },
      { op: 'close', fd: 'f' },
      { op: 'readall', path: 'rw-004.bin' },
    ],
    body: async (t) => {
      const rel = 'rw-004.bin';
      const off = 1048576 + 3;
      const data = pattern(404, 100);
      const fh = await open(mount.path(rel), 'w+');
      let model: Buffer = Buffer.alloc(0);
      try {
        await fh.write(data, 0, data.length, off);
        model = applyWrite(model, off, data);
        expectBytes(await preadFull(fh, 0, model.length + 10), model, `read of a file with a ${off}-byte hole before a 100-byte write`);
        expectBytes(await preadFull(fh, 4090, 10), Buffer.alloc(10), 'read of 10 bytes across a page boundary inside the hole');
        // a hole made by extending truncate after the data
        await fh.truncate(3 * 1048576 + 5);
        model = applyTruncate(model, 3 * 1048576 + 5);
        expectBytes(
          await preadFull(fh, off - 1, model.length - off + 1 + 10),
          model.subarray(off - 1),
          'read across data and the hole made by an extending ftruncate',
        );
      } finally {
        await fh.close();
      }
      await expectFile(mount, rel, model, 'file with holes');
      t.note('size', model.length);
    },
  });

  clause({
    id: 'RW-005',
    level: 'MUST',
    title: 'readv/writev',
    mount,
    body: async (t) => {
      const rel = 'rw-005.bin';
      const sizes = [1, 4095, 4097, 131072 + 3, 1000, 1048576 - 7];
      const total = sizes.reduce((a, b) => a + b, 0);
      const base = 4093;
      const src = pattern(505, total);
      const bufs: Buffer[] = [];
      let at = 0;
      for (const s of sizes) {
        bufs.push(Buffer.from(src.subarray(at, at + s)));
        at += s;
      }
      const fh = await open(mount.path(rel), 'w+');
      let model: Buffer = Buffer.alloc(0);
      try {
        const w = await fh.writev(bufs, base);
        check(w.bytesWritten === total, `pwritev of ${bufs.length} buffers (${total} bytes) at ${base} wrote ${w.bytesWritten}`);
        model = applyWrite(model, base, src);
        const rsizes = [3, 8191, 200000, total - 3 - 8191 - 200000];
        const rbufs = rsizes.map((s) => Buffer.alloc(s));
        const r = await fh.readv(rbufs, base);
        check(r.bytesRead === total, `preadv of ${rbufs.length} buffers (${total} bytes) at ${base} returned ${r.bytesRead}`);
        expectBytes(Buffer.concat(rbufs), src, `preadv at ${base}`);
      } finally {
        await fh.close();
      }
      await expectFile(mount, rel, model, 'file written by pwritev');
      t.note('bytes', total);
    },
  });

  clause({
    id: 'RW-006',
    level: 'MUST',
    title: '4 MiB reads and writes',
    mount,
    body: async (t) => {
      const rel = 'rw-006.bin';
      const len = 4 * 1048576;
      const off = 12345;
      const data = pattern(606, len);
      const fh = await open(mount.path(rel), 'w+');
      let model: Buffer = Buffer.alloc(0);
      try {
        const w = await fh.write(data, 0, len, off);
        check(w.bytesWritten === len, `one 4 MiB pwrite at ${off} wrote ${w.bytesWritten} bytes`);
        model = applyWrite(model, off, data);
        const buf = Buffer.alloc(len);
        const r = await fh.read(buf, 0, len, off);
        // a single read may legitimately return fewer bytes; the rest must follow
        const rest = r.bytesRead < len ? await preadFull(fh, off + r.bytesRead, len - r.bytesRead) : Buffer.alloc(0);
        t.note('first read returned', r.bytesRead);
        expectBytes(Buffer.concat([buf.subarray(0, r.bytesRead), rest]), data, `4 MiB pread at ${off}`);
      } finally {
        await fh.close();
      }
      expectBytes(await readFile(mount.path(rel)), model, 'readFile of the 4 MiB file');
      await expectFile(mount, rel, model, '4 MiB file');
    },
  });

  clause({
    id: 'RW-007',
    level: 'MUST',
    title: 'concurrent O_APPEND writers never overlap',
    mount,
    body: async (t) => {
      const rel = 'rw-007.log';
      const writers = 4;
      const records = 40;
      const HDR = 16;
      const lenOf = (w: number, s: number) => ((s * 7919 + w * 104729) % 20000) + 17;
      const record = (w: number, s: number) => {
        const n = lenOf(w, s);
        const b = Buffer.alloc(HDR + n);
        b.write('FCAP', 0, 'latin1');
        b.writeUInt16LE(w, 4);
        b.writeUInt16LE(s, 6);
        b.writeUInt32LE(n, 8);
        pattern(w * 1000 + s, n).copy(b, HDR);
        return b;
      };
      await writeFile(mount.path(rel), '');
      const fhs = await Promise.all(Array.from({ length: writers }, () => open(mount.path(rel), 'a')));
      let expected = 0;
      try {
        await Promise.all(
          fhs.map(async (fh, w) => {
            for (let s = 0; s < records; s++) {
              const b = record(w, s);
              const { bytesWritten } = await fh.write(b);
              check(bytesWritten === b.length, `O_APPEND write of ${b.length} bytes by writer ${w} wrote ${bytesWritten}`);
            }
          }),
        );
        for (let w = 0; w < writers; w++) for (let s = 0; s < records; s++) expected += HDR + lenOf(w, s);
      } finally {
        await Promise.all(fhs.map((f) => f.close()));
      }
      const got = await readFile(mount.path(rel));
      // a read path that corrupts bytes is not an overlap: tell the two apart first
      if (mount.claims.mirror)
        expectBytes(got, await readFile(mount.backing(rel)), 'the appended file read through the mount, compared with the backing file read directly');
      const next = new Array(writers).fill(0);
      let off = 0;
      while (off < got.length) {
        if (got.length - off < HDR || got.toString('latin1', off, off + 4) !== 'FCAP')
          fail(
            `at offset ${off} of the appended file there is no record header (found ${got.subarray(off, off + 8).toString('hex')}): O_APPEND writes overlapped or left a gap; ${next.map((n, w) => `writer ${w}: ${n} records before`).join(', ')}`,
          );
        const w = got.readUInt16LE(off + 4);
        const s = got.readUInt16LE(off + 6);
        const n = got.readUInt32LE(off + 8);
        check(
          w < writers && s === next[w] && n === lenOf(w, s),
          `record at offset ${off} is writer ${w} #${s} (${n} bytes), expected writer ${w}'s record #${next[w]}`,
        );
        expectBytes(got.subarray(off + HDR, off + HDR + n), pattern(w * 1000 + s, n), `payload of writer ${w}'s record #${s} at offset ${off}`);
        next[w]++;
        off += HDR + n;
      }
      check(got.length === expected, `after ${writers}x${records} concurrent O_APPEND writes the file has ${got.length} bytes, expected ${expected}`);
      check(
        next.every((n) => n === records),
        `records found per writer: ${next.join(', ')}; expected ${records} each`,
      );
      t.note('bytes', got.length);
    },
  });

  clause({
    id: 'RW-008',
    level: 'MUST',
    title: 'O_TRUNC empties the file',
    mount,
    body: async (t) => {
      const rel = 'rw-008.bin';
      await writeFile(mount.path(rel), pattern(808, 200 * 1024 + 3));
      const other = await open(mount.path(rel), 'r');
      try {
        const before = await preadFull(other, 0, 100);
        expectBytes(before, pattern(808, 100), 'read before O_TRUNC');
        const fh = await open(mount.path(rel), C.O_WRONLY | C.O_TRUNC);
        try {
          const sizes = { 'fstat on the O_TRUNC fd': (await fh.stat()).size, 'fstat on another fd': (await other.stat()).size };
          for (const [k, v] of Object.entries(sizes))
            check(v === 0, `${k} showed size ${v} right after open(O_TRUNC) of a ${200 * 1024 + 3}-byte file; expected 0`);
          const r = await preadFull(other, 0, 4096);
          check(r.length === 0, `read on another fd after open(O_TRUNC) returned ${r.length} bytes of the old contents; expected 0 (EOF)`);
          const data = pattern(809, 5000);
          await fh.write(data, 0, data.length, 0);
          expectBytes(await preadFull(other, 0, 8192), data, 'read on another fd after writing 5000 bytes to the truncated file');
          await expectFile(mount, rel, data, 'file after O_TRUNC and a 5000-byte write');
        } finally {
          await fh.close();
        }
      } finally {
        await other.close();
      }
      t.note('checked', 'O_TRUNC on open with another fd open');
    },
  });

  clause({
    id: 'RW-009',
    level: 'MUST',
    title: 'ftruncate shrink and extend',
    mount,
    body: async (t) => {
      const rel = 'rw-009.bin';
      let model: Buffer = pattern(909, 300000);
      await writeFile(mount.path(rel), model);
      const fh = await open(mount.path(rel), 'r+');
      const other = await open(mount.path(rel), 'r');
      try {
        const steps: [string, number, boolean][] = [
          ['ftruncate shrink', 5003, true],
          ['ftruncate extend', 200001, true],
          ['truncate by path shrink', 131071, false],
          ['truncate by path extend', 1048576 + 9, false],
          ['ftruncate to zero', 0, true],
          ['ftruncate extend from zero', 4097, true],
        ];
        for (const [what, size, byFd] of steps) {
          if (byFd) await fh.truncate(size);
          else await truncate(mount.path(rel), size);
          model = applyTruncate(model, size);
          const st = (await other.stat()).size;
          check(st === size, `after ${what} to ${size}, fstat on another fd showed size ${st}`);
          expectBytes(await preadFull(other, 0, size + 4096), model, `read after ${what} to ${size}`);
          // the tail of a partial page must not come back after shrink + extend
          if (what === 'ftruncate extend') {
            const w = pattern(910, 10);
            await fh.write(w, 0, 10, 5003 - 10 + 0);
            model = applyWrite(model, 5003 - 10, w);
          }
        }
        await expectFile(mount, rel, model, 'file after shrinking and extending truncates');
      } finally {
        await fh.close();
        await other.close();
      }
      t.note('final size', model.length);
    },
  });

  clause({
    id: 'RW-010',
    level: 'MUST',
    title: 'fallocate and SEEK_DATA/SEEK_HOLE',
    mount,
    body: async (t) => {
      const rel = 'rw-010.bin';
      const fh = await open(mount.path(rel), 'w+');
      let model: Buffer = Buffer.alloc(0);
      const notes: Record<string, string> = {};
      const falloc = async (what: string, mode: number, off: number, len: number): Promise<boolean> => {
        try {
          await fallocateAsync(fh.fd, mode, off, len);
          notes[what] = 'OK';
          return true;
        } catch (e) {
          const code = errnoOf(e);
          if (code === 'EOPNOTSUPP' || code === 'ENOSYS') {
            notes[what] = code;
            return false;
          }
          fail(`fallocate(${what}, offset ${off}, length ${len}) failed with ${code}`);
        }
      };
      try {
        const a = pattern(1010, 65536);
        await fh.write(a, 0, a.length, 0);
        model = applyWrite(model, 0, a);
        if (await falloc('mode 0 (extends)', 0, 65536 + 100, 300000)) model = applyTruncate(model, 65536 + 100 + 300000);
        await falloc('KEEP_SIZE beyond EOF', FALLOC_FL.FALLOC_FL_KEEP_SIZE, model.length, 1048576);
        let st = (await fh.stat()).size;
        check(st === model.length, `after fallocate (${JSON.stringify(notes)}) fstat showed size ${st}, expected ${model.length}`);
        const b = pattern(1011, 65536);
        await fh.write(b, 0, b.length, 1048576);
        model = applyWrite(model, 1048576, b);
        if (await falloc('PUNCH_HOLE|KEEP_SIZE', FALLOC_FL.FALLOC_FL_PUNCH_HOLE | FALLOC_FL.FALLOC_FL_KEEP_SIZE, 4096 + 3, 20000))
          model.fill(0, 4096 + 3, 4096 + 3 + 20000);
        st = (await fh.stat()).size;
        check(st === model.length, `after punching a hole with KEEP_SIZE fstat showed size ${st}, expected ${model.length}`);
        expectBytes(await preadFull(fh, 0, model.length + 100), model, `read after fallocate (${JSON.stringify(notes)})`);
        // SEEK_DATA / SEEK_HOLE: any answer consistent with the bytes is allowed (a filesystem may report all data)
        const seeks: Record<string, string> = {};
        for (const x of [0, 5000, 4096 + 3 + 100, 65536 + 200, 500000, 1048576 + 10, model.length - 1]) {
          let d: number;
          try {
            d = Number(await lseekAsync(fh.fd, x, SEEK.SEEK_DATA));
          } catch (e) {
            fail(`lseek(${x}, SEEK_DATA) in a ${model.length}-byte file failed with ${errnoOf(e)}`);
          }
          check(d >= x && d < model.length, `lseek(${x}, SEEK_DATA) returned ${d} in a ${model.length}-byte file`);
          const nz = model.subarray(x, d).findIndex((v) => v !== 0);
          check(nz < 0, `lseek(${x}, SEEK_DATA) returned ${d}, skipping data at offset ${x + nz}`);
          const h = Number(await lseekAsync(fh.fd, x, SEEK.SEEK_HOLE));
          check(h >= x && h <= model.length, `lseek(${x}, SEEK_HOLE) returned ${h} in a ${model.length}-byte file`);
          check(h === model.length || model[h] === 0, `lseek(${x}, SEEK_HOLE) returned ${h} but the byte there is data (0x${model[h]?.toString(16)})`);
          seeks[x] = `data ${d}, hole ${h}`;
        }
        for (const whence of ['SEEK_DATA', 'SEEK_HOLE'] as const) {
          let r: string;
          try {
            r = String(await lseekAsync(fh.fd, model.length, SEEK[whence]));
          } catch (e) {
            r = errnoOf(e);
          }
          check(r === 'ENXIO', `lseek(EOF ${model.length}, ${whence}) gave ${r}, expected ENXIO`);
        }
        t.note('lseek', seeks);
      } finally {
        await fh.close();
      }
      t.note('fallocate', notes);
      await expectFile(mount, rel, model, 'file after fallocate');
    },
  });

  clause({
    id: 'RW-011',
    level: 'MUST',
    title: 'copy_file_range inside the mount',
    mount,
    body: async (t) => {
      const srcF = tree.files.find((f) => f.size > 3 * 1048576)!;
      const rel = 'rw-011.bin';
      const src = await open(mount.path(srcF.path), 'r');
      const dst = await open(mount.path(rel), 'w+');
      let model: Buffer = Buffer.alloc(0);
      const copy = async (from: typeof src, offIn: number, to: typeof dst, offOut: number, len: number) => {
        let done = 0;
        while (done < len) {
          const n = await copyFileRangeAsync(from.fd, offIn + done, to.fd, offOut + done, len - done);
          if (n === 0) fail(`copy_file_range returned 0 after ${done} of ${len} bytes (source offset ${offIn + done})`);
          done += n;
        }
      };
      try {
        const len = 2 * 1048576 + 7;
        await copy(src, 12345, dst, 4097, len);
        model = applyWrite(model, 4097, pattern(srcF.seed, len, 12345));
        expectBytes(await preadFull(dst, 0, model.length + 10), model, `copy_file_range of ${len} bytes from ${srcF.path}@12345 to ${rel}@4097`);
        await copy(dst, 4097, dst, 3000001, 100000);
        model = applyWrite(model, 3000001, Buffer.from(model.subarray(4097, 4097 + 100000)));
        expectBytes(await preadFull(dst, 0, model.length + 10), model, 'copy_file_range of 100000 bytes inside one file');
      } finally {
        await src.close();
        await dst.close();
      }
      await expectFile(mount, rel, model, 'destination of copy_file_range');
      t.note('size', model.length);
    },
  });

  clause({
    id: 'RW-012',
    level: 'MUST',
    title: 'fsync and fdatasync succeed',
    mount,
    body: async (t) => {
      const rel = 'rw-012.bin';
      const data = pattern(1212, 200000 + 13);
      const fh = await open(mount.path(rel), 'w+');
      const results: Record<string, string> = {};
      try {
        await fh.write(data, 0, data.length, 0);
        const ops: [string, () => Promise<unknown>][] = [
          ['fsync', () => fh.sync()],
          ['fdatasync', () => fh.datasync()],
          ['fsync (raw)', () => fsyncAsync(fh.fd)],
          ['fdatasync (raw)', () => fdatasyncAsync(fh.fd)],
        ];
        for (const [n, op] of ops) {
          try {
            await op();
            results[n] = 'OK';
          } catch (e) {
            results[n] = errnoOf(e);
          }
        }
        const ro = await open(mount.path(rel), 'r');
        try {
          results['fsync on O_RDONLY fd'] = await ro.sync().then(() => 'OK', errnoOf);
        } finally {
          await ro.close();
        }
      } finally {
        await fh.close();
      }
      t.note('results', results);
      const bad = Object.entries(results).filter(([, v]) => v !== 'OK');
      check(bad.length === 0, `${bad.map(([k, v]) => `${k} failed with ${v}`).join('; ')} after a ${data.length}-byte write`);
      await expectFile(mount, rel, data, 'file after fsync/fdatasync');
    },
  });

  clause({
    id: 'RW-013',
    level: 'MUST',
    title: 'writes through the mount are in the backing file at once, and the reverse',
    mount,
    requires: ['mirror'],
    body: async (t) => {
      const rel = 'rw-013.bin';
      let model: Buffer = pattern(1313, 300000);
      await writeFile(mount.path(rel), model);
      const fh = await open(mount.path(rel), 'r+');
      try {
        const w = pattern(1314, 131075);
        await fh.write(w, 0, w.length, 4093);
        model = applyWrite(model, 4093, w);
        // no fsync, fd still open: the backing file must already hold the bytes
        expectBytes(
          await readFile(mount.backing(rel)),
          model,
          'the backing file read directly right after a write through the mount (fd still open, no fsync)',
        );
        const b = pattern(1315, 9000);
        const bf = await open(mount.backing(rel), 'r+');
        try {
          await bf.write(b, 0, b.length, 70001);
        } finally {
          await bf.close();
        }
        model = applyWrite(model, 70001, b);
        const fresh = await open(mount.path(rel), 'r');
        try {
          expectBytes(
            await preadFull(fresh, 0, model.length + 10),
            model,
            'read through a new fd of the mount right after a same-size write to the backing file',
          );
        } finally {
          await fresh.close();
        }
        // an fd opened before: in passthrough it reads the backing file itself (no cache in between)
        if (mount.claims.passthrough) expectBytes(await preadFull(fh, 70001, 9000), b, 'read on the passthrough fd opened before the backing file was written');
      } finally {
        await fh.close();
      }
      await unlink(mount.path(rel));
      t.note('checked', 'mount->backing and backing->mount');
    },
  });
  clause({
    id: 'RW-014',
    level: 'MUST',
    title: 'fsync and fdatasync reach the server, and the server syncs its file',
    mount,
    requires: ['passthrough', 'tracefs', 'ioctl-trace'],
    body: async (t) => {
      // The kernel never syncs a passthrough file's backing file: fsync(2) sends FUSE_FSYNC and
      // nothing else, and after one ENOSYS reply every fsync returns 0 unsent (KERNEL-RULES H1).
      // Writes that went to the backing file by passthrough never reached the server, which
      // still has to sync its file when asked: one of its threads calls fsync, fdatasync, syncfs
      // or sync while the kernel waits for the reply.
      const rel = 'rw-014.bin';
      const data = pattern(1414, 300000 + 7);
      const fh = await open(mount.path(rel), 'w+');
      const seen: Record<string, { fsyncRequests: number; serverSyncs: string[] }> = {};
      try {
        await fh.write(data, 0, data.length, 0);
        await quiesce(mount.connection);
        const ops: [string, () => Promise<unknown>][] = [
          ['fsync', () => fsyncAsync(fh.fd)],
          ['fdatasync', () => fdatasyncAsync(fh.fd)],
          ['a second fsync', () => fsyncAsync(fh.fd)],
        ];
        let enosys = false;
        for (const [name, op] of ops) {
          const win = await requestsDuring(mount, `RW-014 ${name}`, async () => {
            await op();
          });
          const sends = win.events.filter((e) => e.kind === 'request_send' && e.opname === 'FUSE_FSYNC');
          const ends = win.events.filter((e) => e.kind === 'request_end' && sends.some((s) => s.kind === 'request_send' && s.unique === e.unique));
          const syncs = win.events
            .filter((e) => e.kind === 'other' && e.event === 'syscall')
            .map((e) => (e as { body: string }).body)
            .filter((b) => SYNC_SYSCALLS.some((c) => b.startsWith(`sys_${c}(`)));
          seen[name] = { fsyncRequests: sends.length, serverSyncs: syncs };
          const errors = ends.map((e) => (e.kind === 'request_end' ? e.error : 0));
          if (errors.includes(-38)) enosys = true;
          if (sends.length === 0)
            fail(
              `${name} of /${rel} (after a ${data.length}-byte write) returned without sending FUSE_FSYNC` +
                (enosys
                  ? ': the server answered an earlier FUSE_FSYNC with ENOSYS, after which the kernel returns 0 from every fsync without asking (KERNEL-RULES H1): nothing written by passthrough is ever synced'
                  : ''),
            );
          if (errors.some((e) => e !== 0)) continue; // an error reply: the caller was told fsync failed (RW-012 judges that)
          if (syncs.length === 0)
            fail(
              `${name} of /${rel}: the server answered FUSE_FSYNC (unique ${sends.map((s) => (s.kind === 'request_send' ? s.unique : 0)).join(', ')}) with success without calling ${SYNC_SYSCALLS.join(', ')} in any of its threads: ` +
                'the kernel never syncs a passthrough file itself (KERNEL-RULES H1), so data written through the mount is not on stable storage when fsync returns',
            );
        }
      } finally {
        await fh.close();
        t.note('fsync', seen);
        await unlink(mount.path(rel)).catch(() => {});
      }
    },
  });
  // RW-015: Linux AIO (io_submit) takes the backing file's asynchronous path in passthrough
  // (KERNEL-RULES F8: a kiocb that is not synchronous, completed by the backing filesystem).
  clause({
    id: 'RW-015',
    level: 'MUST',
    title: 'Linux AIO (io_submit) reads, writes and fdsync agree with the model',
    mount,
    body: async (t) => {
      const rel = 'rw-015.bin';
      let model: Buffer = pattern(1515, 1048576 + 4099);
      // on a passthrough mirror the file is made behind the mount, so no page of it is cached (a
      // cached page would hide a FUSE_READ); elsewhere through the mount (a server may not see
      // files made behind its back: fuse-overlayfs caches its lookups)
      if (mount.claims.mirror && fullPassthrough(mount)) await writeFile(mount.backing(rel), model);
      else await writeFile(mount.path(rel), model);
      const bufs: AlignedBuffer[] = [];
      const buf = (n: number) => {
        const b = alignedBuffer(Math.max(n, 1));
        bufs.push(b);
        return b;
      };
      const fd = await openAsync(mount.path(rel), O.O_RDWR | O.O_CLOEXEC);
      try {
        const reads: [number, number][] = [
          [0, 262144],
          [4095, 131077],
          [524289, 65536],
          [model.length - 1000, 65536], // short at EOF
        ];
        const w1 = pattern(1516, 70001);
        const w2 = pattern(1517, 5000);
        const run = async () => {
          const rb = reads.map(([, len]) => buf(len));
          const got = await aioRun(reads.map(([offset, len], i) => ({ op: 'pread', fd, buf: rb[i]!, len, offset }) satisfies AioOp));
          const wb = [buf(w1.length), buf(w2.length)];
          w1.copy(wb[0]!.buf);
          w2.copy(wb[1]!.buf);
          const wrote = await aioRun([
            { op: 'pwrite', fd, buf: wb[0]!, len: w1.length, offset: 12345 },
            { op: 'pwrite', fd, buf: wb[1]!, len: w2.length, offset: model.length - 2000 }, // extends the file
          ]);
          const synced = await aioRun([{ op: 'fdsync', fd }]);
          return { got, rb, wrote, synced };
        };
        const win = fullPassthrough(mount) ? await requestsDuring(mount, 'RW-015 aio', run) : null;
        const r = win ? win.result : await run();
        t.note('results', { reads: r.got, writes: r.wrote, fdsync: r.synced });
        for (const [i, [offset, len]] of reads.entries()) {
          const want = model.subarray(offset, Math.min(model.length, offset + len));
          if (r.got[i]! < 0) fail(`AIO pread of ${len} bytes at ${offset} failed with errno ${-r.got[i]!}`);
          expectBytes(r.rb[i]!.buf.subarray(0, r.got[i]!), want, `AIO pread of ${len} bytes of /${rel} at ${offset}`);
        }
        check(r.wrote[0] === w1.length && r.wrote[1] === w2.length, `AIO pwrite results ${r.wrote.join(', ')}, expected ${w1.length}, ${w2.length}`);
        check(r.synced[0] === 0, `AIO fdsync result ${r.synced[0]}, expected 0`);
        model = applyWrite(applyWrite(model, 12345, w1), model.length - 2000, w2);
        if (win) expectBackingPath(win, `AIO reads and writes of /${rel}`);
      } finally {
        await closeAsync(fd);
        for (const b of bufs) b.free();
      }
      await expectFile(mount, rel, model, 'file after AIO writes');
      if (mount.claims.mirror) expectBytes(await readFile(mount.backing(rel)), model, `the backing file of /${rel} after AIO writes`);
    },
  });

  // RW-016: the per-call flags of preadv2/pwritev2 reach the backing file (KERNEL-RULES F7: only
  // NOWAIT, HIPRI, DSYNC, SYNC and APPEND are passed on), and I/O of zero length moves nothing (F10).
  clause({
    id: 'RW-016',
    level: 'MUST',
    title: 'preadv2/pwritev2 per-call flags: RWF_APPEND appends at the end; RWF_DSYNC, RWF_SYNC, RWF_HIPRI, RWF_NOWAIT keep the bytes right',
    mount,
    body: async (t) => {
      const rel = 'rw-016.bin';
      let model: Buffer = pattern(1616, 200003);
      await writeFile(mount.path(rel), model);
      const fd = await openAsync(mount.path(rel), O.O_RDWR | O.O_CLOEXEC);
      const b = alignedBuffer(65536);
      const results: Record<string, string> = {};
      let win: EvidenceWindow | null = null;
      try {
        const write = async (name: string, data: Buffer, offset: number, flags: number) => {
          data.copy(b.buf);
          const n = await pwritev2Async(fd, b, data.length, offset, flags).catch((e) => errnoOf(e));
          results[name] = String(n);
          if (n !== data.length) fail(`pwritev2 of ${data.length} bytes with ${name} returned ${n}`);
        };
        const read = async (name: string, offset: number, len: number, flags: number, mayWait: boolean) => {
          b.buf.fill(0);
          const n = await preadv2Async(fd, b, len, offset, flags).catch((e) => errnoOf(e));
          results[name] = String(n);
          // RWF_NOWAIT may answer EAGAIN where the data is not at hand, and the VFS refuses it with
          // EOPNOTSUPP on a file without FMODE_NOWAIT (a FUSE file on 6.18, passthrough or not);
          // any answer with bytes must carry the file's bytes
          if (mayWait && (n === 'EAGAIN' || n === 'EOPNOTSUPP')) return;
          if (typeof n !== 'number') fail(`preadv2 of ${len} bytes at ${offset} with ${name} failed with ${n}`);
          expectBytes(b.buf.subarray(0, n), model.subarray(offset, offset + len), `preadv2 of ${len} bytes at ${offset} with ${name}`);
        };
        const run = async () => {
          const a = pattern(1617, 5003);
          await write('RWF_APPEND (offset 0)', a, 0, RWF.RWF_APPEND);
          model = Buffer.concat([model, a]); // appended at the end, whatever the offset said
          const d = pattern(1618, 4096);
          await write('RWF_DSYNC', d, 8191, RWF.RWF_DSYNC);
          model = applyWrite(model, 8191, d);
          const s = pattern(1619, 777);
          await write('RWF_SYNC', s, 100000, RWF.RWF_SYNC);
          model = applyWrite(model, 100000, s);
          await read('RWF_NOWAIT', 4000, 65536, RWF.RWF_NOWAIT, true);
          await read('RWF_HIPRI', model.length - 3000, 65536, RWF.RWF_HIPRI, false);
          // zero-length I/O returns 0 (F10)
          results['pwrite of 0 bytes'] = String(await pwriteAsync(fd, Buffer.alloc(0), 50).catch((e) => errnoOf(e)));
          results['pread of 0 bytes'] = String(await preadAsync(fd, Buffer.alloc(16), 50, 0).catch((e) => errnoOf(e)));
        };
        win = fullPassthrough(mount) ? await requestsDuring(mount, 'RW-016 rwf', run) : null;
        if (!win) await run();
        t.note('results', results);
        check(
          results['pwrite of 0 bytes'] === '0' && results['pread of 0 bytes'] === '0',
          `zero-length pwrite/pread returned ${results['pwrite of 0 bytes']}/${results['pread of 0 bytes']}, expected 0`,
        );
      } finally {
        b.free();
        await closeAsync(fd);
      }
      await expectFile(mount, rel, model, 'file after pwritev2 with per-call flags (RWF_APPEND appends at the end)');
      if (mount.claims.mirror) expectBytes(await readFile(mount.backing(rel)), model, `the backing file of /${rel} after pwritev2`);
      if (win) expectBackingPath(win, `preadv2/pwritev2 of /${rel}`);
    },
  });
});
