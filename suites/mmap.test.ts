// MAP: mmap through the mount. Every load and store of mapped memory happens in a child process
// (src/harness/child.ts): a fault into a hung server, or a SIGBUS, kills or stalls the child, not the
// test worker; the child is killed at the clause deadline and a fatal signal is reported as a failure.
import { open, readFile, writeFile } from 'node:fs/promises';
import { clause, forEachVariant, check, expectBytes, pattern, loadTree, withMapper, expectFile, preadFull, applyWrite } from '../src/harness/index.ts';
import { O, PROT, MAP } from '../src/sys/index.ts';

const tree = loadTree('basic');

forEachVariant({}, (mount) => {
  clause({
    id: 'MAP-001',
    level: 'MUST',
    title: 'MAP_SHARED read equals the file',
    mount,
    body: async (t) => {
      const files = tree.files.filter((f) => f.size > 0 && !f.path.startsWith('many/') && !f.path.startsWith('exec/'));
      await writeFile(mount.path('map-001.bin'), pattern(2101, 200003));
      const all = [
        ...files.map((f) => ({ path: f.path, size: f.size, model: pattern(f.seed, f.size) })),
        { path: 'map-001.bin', size: 200003, model: pattern(2101, 200003) },
      ];
      await withMapper(t.signal, async (child) => {
        for (const f of all) {
          const fd = await child.open(mount.path(f.path), O.O_RDONLY);
          const map = await child.map(fd, f.size, MAP.MAP_SHARED, PROT.PROT_READ);
          expectBytes(await child.read(map, 0, f.size), f.model, `MAP_SHARED read of all of ${f.path}`);
          if (f.size > 8192) {
            const off = f.size > 131075 ? 131071 : 4095;
            expectBytes(await child.read(map, off, 4099), f.model.subarray(off, off + 4099), `MAP_SHARED read of 4099 bytes at ${off} of ${f.path}`);
          }
          await child.unmap(map);
          await child.closeFd(fd);
        }
      });
      t.note('files', all.length);
    },
  });

  clause({
    id: 'MAP-002',
    level: 'MUST',
    title: 'MAP_SHARED write + msync is seen by read() on another fd and in the backing file',
    mount,
    body: async (t) => {
      const rel = 'map-002.bin';
      let model: Buffer = pattern(2200, 300001);
      await writeFile(mount.path(rel), model);
      const before = await open(mount.path(rel), 'r');
      try {
        await withMapper(t.signal, async (child) => {
          const fd = await child.open(mount.path(rel), O.O_RDWR);
          const map = await child.map(fd, model.length);
          for (const [off, len] of [
            [4093, 5000],
            [131071, 3],
            [299990, 11],
            [0, 1],
          ] as const) {
            const d = pattern(2201 + off, len);
            await child.write(map, off, d);
            model = applyWrite(model, off, d);
          }
          await child.msync(map);
          expectBytes(
            await preadFull(before, 0, model.length + 1),
            model,
            'read() on an fd opened before the mapping, after MAP_SHARED stores + msync(MS_SYNC)',
          );
          await expectFile(mount, rel, model, 'file after MAP_SHARED stores + msync(MS_SYNC) (mapping still in place)');
          await child.unmap(map);
          await child.closeFd(fd);
        });
      } finally {
        await before.close();
      }
      await expectFile(mount, rel, model, 'file after munmap');
    },
  });

  clause({
    id: 'MAP-003',
    level: 'MUST',
    title: 'MAP_PRIVATE writes stay private',
    mount,
    body: async (t) => {
      const rel = 'map-003.bin';
      const model = pattern(2300, 65536 + 7);
      await writeFile(mount.path(rel), model);
      await withMapper(t.signal, async (child) => {
        const fd = await child.open(mount.path(rel), O.O_RDWR);
        const priv = await child.map(fd, model.length, MAP.MAP_PRIVATE);
        const shared = await child.map(fd, model.length, MAP.MAP_SHARED, PROT.PROT_READ);
        const d = pattern(2301, 100);
        await child.write(priv, 4000, d);
        await child.write(priv, 65536, Buffer.from('xyz'));
        await child.msync(priv);
        const mine = applyWrite(Buffer.from(model), 4000, d);
        mine.write('xyz', 65536, 'latin1');
        expectBytes(await child.read(priv, 0, model.length), mine, 'the MAP_PRIVATE mapping after stores into it');
        expectBytes(await child.read(shared, 0, model.length), model, 'a MAP_SHARED mapping of the same file after stores into a MAP_PRIVATE mapping');
        await expectFile(mount, rel, model, 'file after stores into a MAP_PRIVATE mapping');
        await child.unmap(priv);
        await child.unmap(shared);
        await child.closeFd(fd);
      });
      await expectFile(mount, rel, model, 'file after munmap of the MAP_PRIVATE mapping');
      t.note('private bytes', 103);
    },
  });

  clause({
    id: 'MAP-004',
    level: 'MUST',
    title: 'mmap and pwrite on the same file stay coherent',
    mount,
    body: async (t) => {
      const rel = 'map-004.bin';
      let model: Buffer = pattern(2400, 200000);
      await writeFile(mount.path(rel), model);
      const fh = await open(mount.path(rel), 'r+');
      try {
        await withMapper(t.signal, async (child) => {
          const fd = await child.open(mount.path(rel), O.O_RDWR);
          const map = await child.map(fd, model.length);
          expectBytes(await child.read(map, 0, model.length), model, 'MAP_SHARED mapping before any write');
          // pwrite -> mapping
          const a = pattern(2401, 9000);
          await fh.write(a, 0, a.length, 70001);
          model = applyWrite(model, 70001, a);
          expectBytes(await child.read(map, 0, model.length), model, 'the MAP_SHARED mapping right after a 9000-byte pwrite at 70001 on another fd');
          // mapping -> pread, before any msync
          const b = pattern(2402, 5003);
          await child.write(map, 150003, b);
          model = applyWrite(model, 150003, b);
          expectBytes(
            await preadFull(fh, 0, model.length + 1),
            model,
            'pread on another fd right after a 5003-byte store at 150003 into the MAP_SHARED mapping (no msync yet)',
          );
          // interleaved, same page
          const c = pattern(2403, 10);
          await fh.write(c, 0, 10, 150010);
          model = applyWrite(model, 150010, c);
          expectBytes(await child.read(map, 150000, 4096), model.subarray(150000, 154096), 'the mapping after a pwrite into the page it had just stored into');
          await child.msync(map);
          await child.unmap(map);
          await child.closeFd(fd);
        });
      } finally {
        await fh.close();
      }
      await expectFile(mount, rel, model, 'file after interleaved pwrite and mapping stores');
      const back = mount.claims.mirror ? (await readFile(mount.backing(rel))).length : null;
      t.note('backing size', back);
      check(back === null || back === model.length, `backing file has ${back} bytes, expected ${model.length}`);
    },
  });
});
