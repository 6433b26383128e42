import { open, readFile } from 'node:fs/promises';
import { clause, forEachVariant, check, expectBytes, pattern, loadTree } from '../src/harness/index.ts';

const tree = loadTree('basic');

forEachVariant({}, (mount) => {

clause(
  'RW-001',
  async (t) => {
    let bytes = 0;
    for (const f of tree.files) {
      const got = await readFile(mount.path(f.path));
      expectBytes(got, pattern(f.seed, f.size), `sequential read of ${f.path}`);
      bytes += got.length;
    }
    t.note('files', tree.files.length);
    t.note('bytes', bytes);
  },
  { mount },
);

clause(
  'RW-002',
  async (t) => {
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
  { mount },
);

clause(
  'RW-003',
  async (t) => {
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
  { mount },
);
});
