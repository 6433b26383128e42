import { open, stat, readFile, readdir, writeFile, unlink } from 'node:fs/promises';
import { clause, useMount, sideBySide, check, errnoFrom, runContext } from '../src/harness/index.ts';
import { alive, fuseMountAt, liveThreads } from '../src/mount/index.ts';

// Each lifecycle clause ends its server, so each has a mount of its own, and the four run side by side.
sideBySide('LIF-001', () => {
  const clean = useMount();
  clause({
    id: 'LIF-001',
    level: 'MUST',
    title: 'clean unmount: the server exits 0, nothing is left',
    mount: clean,
    body: async (t) => {
      const fh = await open(clean.path('data/f4-4096.bin'), 'r');
      await fh.read(Buffer.alloc(4096), 0, 4096, 0);
      await fh.close();
      const server = clean.server!;
      const pids = server.pids;
      const mp = clean.mountpoint;
      const report = await clean.stop();
      t.note('stop', report);
      check(report, 'the server could not be stopped');
      check(
        report.escalations.length === 0,
        `the server did not stop by its unmount method (${server.spec.manifest.unmount}); needed: ${report.escalations.join(', ')} (standalone reproducer for a server that stays after umount: fixtures/repro/exit-after-umount.py -- COMMAND)`,
      );
      check(
        report.exitCode === 0 || report.exitCode === null,
        `the server exited with code ${report.exitCode}${report.signal ? ` (signal ${report.signal})` : ''} after a clean unmount`,
      );
      check(!fuseMountAt(mp), `the mount at ${mp} is still there`);
      const left = pids.filter((p) => alive(p));
      check(left.length === 0, `server process(es) ${left.join(', ')} still running after unmount`);
    },
  });
});

sideBySide('LIF-002', () => {
  const killed = useMount();
  clause({
    id: 'LIF-002',
    level: 'MUST',
    title: 'killing the server gives ENOTCONN and the mount can be removed',
    mount: killed,
    body: async (t) => {
      const server = killed.server!;
      const file = killed.path('data/f4-4096.bin');
      for (const p of server.pids) {
        try {
          process.kill(p, 'SIGKILL');
        } catch (e) {
          if ((e as { code?: string }).code !== 'ESRCH') throw e; // already gone
        }
      }
      // Wait until every thread of the server has exited, not just its main thread: the leader is a
      // zombie while other threads still exit, and the /dev/fuse fd (so the connection) goes only
      // with the last of them. A request sent inside that window can end with EIO (measured with
      // passthrough_hp: stat gave EIO in 23 of 40 kills when it did not wait), a teardown state
      // of the kernel, not the answer for a dead server.
      const until = Date.now() + 5000;
      while (server.pids.some((p) => liveThreads(p) > 0) && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
      t.note(
        'threads left after 5 s',
        server.pids.map(liveThreads).reduce((a, b) => a + b, 0),
      );
      const errs = { stat: await errnoFrom(() => stat(file)), read: await errnoFrom(() => readFile(file)) };
      t.note('errno after kill', errs);
      // ECONNABORTED instead of ENOTCONN when the server negotiated FUSE_ABORT_ERROR (libfuse does)
      const gone = (e: string) => e === 'ENOTCONN' || e === 'ECONNABORTED';
      check(
        gone(errs.stat) && gone(errs.read),
        `after SIGKILL of the server, stat gave ${errs.stat} and read gave ${errs.read}; expected ENOTCONN (or ECONNABORTED with FUSE_ABORT_ERROR)`,
      );
      killed.broken = true;
      const mp = killed.mountpoint;
      const report = await killed.stop();
      t.note('removal', report?.escalations);
      check(!fuseMountAt(mp), `the dead server's mount at ${mp} could not be removed`);
    },
  });
});

// LIF-003 (INFO): what already-open passthrough fds do once the connection is aborted. 6.18 keeps
// reading and writing the backing file (SPEC §5a); the clause records it for the kernel it ran on.
sideBySide('LIF-003', () => {
  const aborted = useMount();
  clause({
    id: 'LIF-003',
    level: 'INFO',
    title: 'what open passthrough fds do after the connection is aborted',
    mount: aborted,
    requires: ['passthrough'],
    body: async (t) => {
      const file = aborted.path('data/f5-4097.bin');
      const fh = await open(file, 'r+');
      try {
        const before = Buffer.alloc(16);
        await fh.read(before, 0, 16, 0);
        check(aborted.server!.abort(), 'could not abort the connection through fusectl');
        aborted.broken = true;
        const after = Buffer.alloc(16);
        const observed = {
          read: await errnoFrom(() => fh.read(after, 0, 16, 0)),
          write: await errnoFrom(() => fh.write(Buffer.from('abc'), 0, 3, 4096)),
          fstat: await errnoFrom(() => fh.stat()),
          stat: await errnoFrom(() => stat(file)),
          newOpen: await errnoFrom(async () => (await open(file, 'r')).close()),
        };
        t.note('after abort', observed);
        t.note('kernel', runContext().platform.kernel);
        if (observed.read === 'OK') check(after.equals(before), 'a read on the open fd after the abort returned different bytes');
        const gone = (e: string) => e === 'ENOTCONN' || e === 'ECONNABORTED';
        check(
          gone(observed.stat) && gone(observed.newOpen),
          `after the abort, stat gave ${observed.stat} and a new open gave ${observed.newOpen}; the kernel answers ENOTCONN (ECONNABORTED with FUSE_ABORT_ERROR) for anything that needs the server`,
        );
      } finally {
        await fh.close().catch(() => {});
      }
    },
  });
});

// LIF-004: the server's fd table does not grow with the work it does: each open, create, lookup
// and unlink gives its fds back (after the kernel's FORGETs, which come once unlinked inodes go).
sideBySide('LIF-004', () => {
  const churn = useMount();
  const fdCount = async (pids: number[]) => {
    let n = 0;
    for (const p of pids) n += (await readdir(`/proc/${p}/fd`).catch(() => [])).length;
    return n;
  };
  clause({
    id: 'LIF-004',
    level: 'MUST',
    title: 'no fd leak in the server after thousands of operations',
    mount: churn,
    deadlineMs: 120_000,
    body: async (t) => {
      const pids = churn.server!.pids;
      const cycles = 1000;
      await readFile(churn.path('data/f4-4096.bin')); // first lookups and opens are not leaks
      const before = await fdCount(pids);
      for (let i = 0; i < cycles; i++) {
        const f = churn.path(`lif-004-${i % 50}.tmp`);
        await writeFile(f, 'x');
        const fh = await open(churn.path('data/f4-4096.bin'), 'r');
        await fh.read(Buffer.alloc(64), 0, 64, 0);
        await fh.close();
        await unlink(f);
      }
      let after = await fdCount(pids);
      const until = Date.now() + 3000; // FORGETs are asynchronous and batched
      while (after > before + 16 && Date.now() < until) {
        await new Promise((r) => setTimeout(r, 100));
        after = await fdCount(pids);
      }
      t.note('server fds', { before, after, cycles });
      check(
        after <= before + 16,
        `the server held ${before} fds before ${cycles} cycles of create/open/read/close/unlink and ${after} after (${after - before} more): it leaks fds (SPEC: close what you open, forget what the kernel forgets)`,
      );
    },
  });
});
