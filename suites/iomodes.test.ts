// IOM: io modes. The kernel keeps one io mode per inode (SPEC §4): every mix of opens a program
// can make must be served so that the modes never conflict. Each open is made in its own evidence
// window (FileOpens), so an EIO names which open was in passthrough and what the server answered.
import { readFile, writeFile, readdir, opendir, chmod, copyFile, stat } from 'node:fs/promises';
import { execa } from 'execa';
import {
  clause,
  clauseEach,
  useMount,
  check,
  fail,
  expectBytes,
  pattern,
  loadTree,
  errnoOf,
  FileOpens,
  flagNames,
  quiesce,
  type HeldOpen,
  type ReproOp,
  type FlagName,
} from '../src/harness/index.ts';
import { O, PROT, MAP, MS, alignedBuffer, preadAsync, pwriteAsync, openAsync, closeAsync, mmapAsync } from '../src/sys/index.ts';

const mount = useMount();
const tree = loadTree('basic');
const BLK = 4096;
const INIT = 4 * BLK;

const FLAGS: { name: string; flags: number; names: FlagName[] }[] = [
  { name: 'O_RDONLY', flags: O.O_RDONLY, names: ['O_RDONLY'] },
  { name: 'O_WRONLY', flags: O.O_WRONLY, names: ['O_WRONLY'] },
  { name: 'O_RDWR', flags: O.O_RDWR, names: ['O_RDWR'] },
  { name: 'O_APPEND', flags: O.O_WRONLY | O.O_APPEND, names: ['O_WRONLY', 'O_APPEND'] },
  { name: 'O_TRUNC', flags: O.O_RDWR | O.O_TRUNC, names: ['O_RDWR', 'O_TRUNC'] },
  { name: 'O_DIRECT', flags: O.O_RDWR | O.O_DIRECT, names: ['O_RDWR', 'O_DIRECT'] },
  { name: 'O_SYNC', flags: O.O_RDWR | O.O_SYNC, names: ['O_RDWR', 'O_SYNC'] },
  { name: 'O_DSYNC', flags: O.O_WRONLY | O.O_DSYNC, names: ['O_WRONLY', 'O_DSYNC'] },
  { name: 'O_NOATIME', flags: O.O_RDONLY | O.O_NOATIME, names: ['O_RDONLY', 'O_NOATIME'] },
];
const namesOf = (flags: number) => FLAGS.find((f) => f.flags === flags)!.names;

/** IOM-001 as file operations, for the standalone reproducer: the same opens, writes and reads. */
function iom001Repro([fa, fb]: [number, number]): ReproOp[] {
  const rel = 'iom-001.bin';
  const ops: ReproOp[] = [{ op: 'create', path: rel, seed: 1, size: INIT }];
  const fds = [fa, fb].map((f, k) => ({ fd: k ? 'b' : 'a', f }));
  for (const { fd, f } of fds) ops.push({ op: 'open', fd, path: rel, flags: namesOf(f) });
  fds.forEach(({ fd, f }, k) => {
    if (writable(f)) ops.push({ op: 'pwrite', fd, off: (k + 1) * BLK, seed: 10 + k, len: BLK });
  });
  for (const { fd, f } of fds) if (readable(f)) ops.push({ op: 'pread', fd, off: 0, len: INIT + 4 * BLK });
  for (const { fd } of fds) ops.push({ op: 'close', fd });
  ops.push({ op: 'readall', path: rel });
  return ops;
}

const PAIRS: { name: string; value: [number, number] }[] = [];
// ordered pairs: which open comes first decides the inode's io mode
for (let i = 0; i < FLAGS.length; i++)
  for (let j = 0; j < FLAGS.length; j++) PAIRS.push({ name: `${FLAGS[i]!.name}+${FLAGS[j]!.name}`, value: [FLAGS[i]!.flags, FLAGS[j]!.flags] });

const readable = (f: number) => (f & O.O_ACCMODE) !== O.O_WRONLY;
const writable = (f: number) => (f & O.O_ACCMODE) !== O.O_RDONLY;

/** Apply a write to the model; O_APPEND writes land at the end whatever the offset. */
function modelWrite(model: Buffer, data: Buffer, off: number, append: boolean): Buffer {
  const at = append ? model.length : off;
  const out = Buffer.alloc(Math.max(model.length, at + data.length));
  model.copy(out);
  data.copy(out, at);
  return out;
}

clauseEach({
  id: 'IOM-001',
  level: 'MUST',
  title: 'every pair of concurrent open flags on one file succeeds',
  params: PAIRS,
  mount,
  requires: ['passthrough', 'PLT-004'],
  repro: iom001Repro,
  body: async (_t, [fa, fb]) => {
    const rel = 'iom-001.bin';
    await writeFile(mount.path(rel), pattern(1, INIT));
    await quiesce(mount.connection);
    let model = pattern(1, INIT);
    const fo = new FileOpens(mount, rel);
    const buf = alignedBuffer(INIT + 4 * BLK);
    try {
      const held: HeldOpen[] = [];
      for (const f of [fa, fb]) {
        const h = await fo.open(f);
        held.push(h);
        if (f & O.O_TRUNC) model = Buffer.alloc(0);
      }
      // I/O through both fds while both are open (aligned, so O_DIRECT takes it)
      for (const [k, h] of held.entries()) {
        if (!writable(h.flags)) continue;
        const data = pattern(10 + k, BLK);
        data.copy(buf.buf, 0);
        const off = (k + 1) * BLK;
        try {
          const n = await pwriteAsync(h.fd, buf, off, BLK);
          check(n === BLK, `pwrite through open #${h.n} (${flagNames(h.flags)}) wrote ${n} of ${BLK} bytes`);
        } catch (e) {
          if (e instanceof Error && e.name === 'ClauseFailure') throw e;
          fail(
            `pwrite through open #${h.n} (${flagNames(h.flags)}) failed with ${errnoOf(e)} while open #${held[1 - k]!.n} (${flagNames(held[1 - k]!.flags)}) was held`,
          );
        }
        model = modelWrite(model, data, off, (h.flags & O.O_APPEND) !== 0);
      }
      for (const h of held) {
        if (!readable(h.flags)) continue;
        buf.buf.fill(0);
        let n: number;
        try {
          n = await preadAsync(h.fd, buf, 0, buf.size);
        } catch (e) {
          fail(`pread through open #${h.n} (${flagNames(h.flags)}) failed with ${errnoOf(e)} while both opens were held`);
        }
        check(n === model.length, `pread through open #${h.n} (${flagNames(h.flags)}) returned ${n} bytes, expected ${model.length}`);
        expectBytes(Buffer.from(buf.buf.subarray(0, n)), model, `read through open #${h.n} (${flagNames(h.flags)}) while both opens were held`);
      }
    } finally {
      await fo.closeAll();
      buf.free();
    }
    expectBytes(await readFile(mount.path(rel)), model, `/${rel} after both fds were closed`);
    if (mount.claims.mirror) expectBytes(await readFile(mount.backing(rel)), model, `the backing file of /${rel}`);
  },
});

clause({
  id: 'IOM-002',
  level: 'MUST',
  title: 'O_DIRECT I/O (aligned) is correct',
  mount,
  requires: ['passthrough'],
  body: async (t) => {
    const rel = 'iom-002.bin';
    const size = 1024 * 1024;
    const model = pattern(2, size + 3 * BLK);
    await writeFile(mount.path(rel), Buffer.alloc(0));
    const fo = new FileOpens(mount, rel);
    const ab = alignedBuffer(size);
    try {
      const d = await fo.open(O.O_RDWR | O.O_DIRECT);
      const plain = await fo.open(O.O_RDONLY);
      for (const off of [0, 3 * BLK]) {
        model.copy(ab.buf, 0, off, off + size);
        const n = await pwriteAsync(d.fd, ab, off, size);
        check(n === size, `O_DIRECT pwrite of ${size} bytes at ${off} wrote ${n}`);
      }
      ab.buf.fill(0);
      const n = await preadAsync(d.fd, ab, BLK * 2, size);
      check(n === size, `O_DIRECT pread of ${size} bytes at ${BLK * 2} returned ${n}`);
      expectBytes(Buffer.from(ab.buf.subarray(0, n)), model.subarray(2 * BLK, 2 * BLK + size), 'O_DIRECT read back');
      const b = Buffer.alloc(model.length);
      const m = await preadAsync(plain.fd, b, 0);
      check(m === model.length, `buffered pread on a second fd returned ${m} bytes, expected ${model.length}`);
      expectBytes(b, model, 'buffered read on a second fd after O_DIRECT writes');
    } finally {
      await fo.closeAll();
      ab.free();
    }
    if (mount.claims.mirror) expectBytes(await readFile(mount.backing(rel)), model, `the backing file of /${rel}`);
    t.note('bytes', model.length);
  },
});

clause({
  id: 'IOM-003',
  level: 'MUST',
  title: 'shared mmap while other fds are open works and stays coherent',
  mount,
  requires: ['passthrough'],
  body: async (t) => {
    const rel = 'iom-003.bin';
    const size = 64 * 1024;
    const model = pattern(3, size);
    await writeFile(mount.path(rel), model);
    await quiesce(mount.connection);
    const fo = new FileOpens(mount, rel);
    try {
      const rw = await fo.open(O.O_RDWR);
      const ro = await fo.open(O.O_RDONLY);
      const map = await mmapAsync(rw.fd, size, PROT.PROT_READ | PROT.PROT_WRITE, MAP.MAP_SHARED);
      try {
        const a = pattern(31, 5000);
        await map.writeAsync(1000, a);
        a.copy(model, 1000);
        await map.msyncAsync(MS.MS_SYNC);
        const b = Buffer.alloc(size);
        await preadAsync(ro.fd, b, 0);
        expectBytes(b, model, 'read() on another fd after a MAP_SHARED store + msync');
        const c = pattern(32, 3000);
        await pwriteAsync(rw.fd, c, 30000);
        c.copy(model, 30000);
        expectBytes(await map.readAsync(0, size), model, 'the shared mapping after pwrite() on the fd');
        const third = await fo.open(O.O_RDONLY);
        const d = Buffer.alloc(size);
        await preadAsync(third.fd, d, 0);
        expectBytes(d, model, 'read() on a third fd opened while the mapping exists');
      } finally {
        map.munmap();
      }
    } finally {
      await fo.closeAll();
    }
    if (mount.claims.mirror) expectBytes(await readFile(mount.backing(rel)), model, `the backing file of /${rel}`);
    t.note('bytes', size);
  },
});

clause({
  id: 'IOM-004',
  level: 'MUST',
  title: 'executing a binary stored in the mount works',
  mount,
  requires: ['passthrough', 'exec'],
  body: async (t) => {
    const script = 'iom-004.sh';
    await writeFile(mount.path(script), '#!/bin/sh\necho "iom-004 $1"\n');
    await chmod(mount.path(script), 0o755);
    const bin = 'iom-004-true';
    await copyFile('/bin/true', mount.path(bin));
    await chmod(mount.path(bin), 0o755);
    // with a passthrough fd of the binary held open meanwhile
    const fo = new FileOpens(mount, bin);
    try {
      await fo.open(O.O_RDONLY);
      const s = await execa(mount.path(script), ['ok'], { reject: false, timeout: 10_000 });
      check(
        s.exitCode === 0 && s.stdout.trim() === 'iom-004 ok',
        `executing the script /${script} stored in the mount: exit ${s.exitCode}, stdout ${JSON.stringify(String(s.stdout ?? ''))}, ${s.failed && s.exitCode === undefined ? s.shortMessage : `stderr ${JSON.stringify(String(s.stderr ?? '').slice(0, 200))}`}`,
      );
      const b = await execa(mount.path(bin), [], { reject: false, timeout: 10_000 });
      check(
        b.exitCode === 0,
        `executing the ELF binary /${bin} (a copy of /bin/true, ${(await stat(mount.path(bin))).size} bytes) stored in the mount while an O_RDONLY fd of it was open: exit ${b.exitCode}${b.signal ? `, signal ${b.signal}` : ''}, ${b.exitCode === undefined ? b.shortMessage : String(b.stderr ?? '').slice(0, 200)}`,
      );
    } finally {
      await fo.closeAll();
    }
    t.note('executed', [script, bin]);
  },
});

clause({
  id: 'IOM-005',
  level: 'MUST',
  title: 'directory opens and readdir are unaffected by files in passthrough',
  mount,
  requires: ['passthrough'],
  body: async (t) => {
    const dir = 'many';
    const expected = tree.files
      .filter((f) => f.path.startsWith(dir + '/'))
      .map((f) => f.path.slice(dir.length + 1))
      .sort();
    const held: number[] = [];
    try {
      for (const name of expected.slice(0, 6)) held.push(await openAsync(mount.path(`${dir}/${name}`), O.O_RDWR | O.O_CLOEXEC));
      const names = (await readdir(mount.path(dir))).sort();
      check(
        JSON.stringify(names) === JSON.stringify(expected),
        `readdir of /${dir} while 6 of its files were open in passthrough: got ${names.length} entries [${names.slice(0, 5).join(', ')}...], expected ${expected.length}`,
      );
      const d = await opendir(mount.path(dir));
      let n = 0;
      for await (const e of d) {
        check(e.isFile(), `entry ${e.name} of /${dir} is not reported as a regular file`);
        n++;
      }
      check(n === expected.length, `opendir/readdir of /${dir} gave ${n} entries, expected ${expected.length}`);
      const root = (await readdir(mount.path(''))).sort();
      for (const top of ['data', 'deep', 'many']) check(root.includes(top), `readdir of the mount root lacks ${top} while files were open in passthrough`);
      const dfd = await openAsync(mount.path(dir), O.O_RDONLY | O.O_DIRECTORY | O.O_CLOEXEC);
      await closeAsync(dfd);
    } finally {
      for (const fd of held) await closeAsync(fd).catch(() => {});
    }
    t.note('entries', expected.length);
  },
});

clause({
  id: 'IOM-006',
  level: 'MUST',
  title: 'an O_DIRECT fd opened before a passthrough open can still be mapped',
  mount,
  requires: ['passthrough'],
  body: async (t) => {
    // An open answered FOPEN_DIRECT_IO without FOPEN_PASSTHROUGH takes no io mode, so the kernel
    // lets it come before passthrough opens of the same inode (KERNEL-RULES E5); once the inode
    // has a backing object it refuses to map such an fd (ENODEV, E6), where a local filesystem
    // maps it. A server that answers O_DIRECT opens in passthrough too has no such fd.
    const rel = 'iom-006.bin';
    const size = 64 * 1024;
    const model = pattern(6, size);
    await writeFile(mount.path(rel), model);
    await quiesce(mount.connection);
    const fo = new FileOpens(mount, rel);
    try {
      const direct = await fo.open(O.O_RDWR | O.O_DIRECT);
      const ro = await fo.open(O.O_RDONLY);
      let map: Awaited<ReturnType<typeof mmapAsync>>;
      try {
        map = await mmapAsync(direct.fd, size, PROT.PROT_READ, MAP.MAP_SHARED);
      } catch (e) {
        fail(
          `mmap(MAP_SHARED) of /${rel} through open #${direct.n} (O_RDWR|O_DIRECT) failed with ${errnoOf(e)} while open #${ro.n} (O_RDONLY) held it` +
            (errnoOf(e) === 'ENODEV'
              ? `: the kernel maps no fd of an inode with a backing object unless that fd is in passthrough; the O_DIRECT open was answered without FOPEN_PASSTHROUGH (FOPEN_DIRECT_IO alone: KERNEL-RULES E5, E6), which a local filesystem does not refuse`
              : ''),
        );
      }
      try {
        expectBytes(await map.readAsync(0, size), model, `the mapping of /${rel} through the O_DIRECT fd`);
      } finally {
        map.munmap();
      }
      t.note('passthroughOpens', { direct: direct.pt, readOnly: ro.pt });
    } finally {
      await fo.closeAll();
    }
  },
});
