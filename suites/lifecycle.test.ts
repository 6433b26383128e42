import { open, stat, readFile, readdir, readlink, writeFile, unlink } from 'node:fs/promises';
import { clause, useMount, sideBySide, check, fail, errnoFrom, errnoOf, runContext, usedBytes } from '../src/harness/index.ts';
import { alive, fuseMountAt, liveThreads } from '../src/mount/index.ts';
import { umount2Async, MOUNT, openAsync, closeAsync, preadAsync, O } from '../src/sys/index.ts';

/**
 * SIGKILL every process of the server and wait (5 s at most) until every thread of it has exited,
 * not just its main thread: the leader is a zombie while other threads still exit, and the
 * /dev/fuse fd (so the connection) goes only with the last of them. A request sent inside that
 * window can end with EIO (measured with passthrough_hp: stat gave EIO in 23 of 40 kills when it
 * did not wait), a teardown state of the kernel, not the answer for a dead server.
 */
async function killServer(pids: readonly number[]): Promise<void> {
  for (const p of pids) {
    try {
      process.kill(p, 'SIGKILL');
    } catch (e) {
      if ((e as { code?: string }).code !== 'ESRCH') throw e; // already gone
    }
  }
  const until = Date.now() + 5000;
  while (pids.some((p) => liveThreads(p) > 0) && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
}

// Each lifecycle clause ends its server, so each has a mount of its own, and they run side by side.
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
      await killServer(server.pids);
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

/** Processes with an fd on the (deleted) file that was at `path`, from /proc/PID/fd. */
async function holdersOf(path: string): Promise<{ pid: number; comm: string; fd: number }[]> {
  const out: { pid: number; comm: string; fd: number }[] = [];
  const want = `${path} (deleted)`;
  for (const e of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(e)) continue;
    const fds = await readdir(`/proc/${e}/fd`).catch(() => [] as string[]);
    for (const fd of fds) {
      const target = await readlink(`/proc/${e}/fd/${fd}`).catch(() => '');
      if (target === want || target === path) {
        const comm = (await readFile(`/proc/${e}/comm`, 'utf8').catch(() => '?')).trim();
        out.push({ pid: Number(e), comm, fd: Number(fd) });
      }
    }
  }
  return out;
}

// LIF-005 (SHOULD): a server that dies holding backing ids does not free them: the kernel keeps
// them, and the backing files they pin (an unlinked file's space too), until the connection's
// last reference goes with the mount (KERNEL-RULES I2). Once the dead server's mount is removed
// the space must come back; what still holds it then is a process left behind, not the kernel.
sideBySide('LIF-005', () => {
  const dead = useMount();
  const MiB = 1048576;
  clause({
    id: 'LIF-005',
    level: 'SHOULD',
    title: "the space of a file deleted while open comes back once a killed server's mount is removed",
    mount: dead,
    requires: ['passthrough', 'mirror', 'root'],
    body: async (t) => {
      const store = dead.ws!.store;
      const base = await usedBytes(store);
      const rel = 'lif-005.bin';
      const size = 8 * MiB;
      await writeFile(dead.path(rel), Buffer.alloc(size, 0x55));
      const fd = await openAsync(dead.path(rel), O.O_RDWR | O.O_CLOEXEC);
      let closed = false;
      try {
        await unlink(dead.path(rel));
        const server = dead.server!;
        await killServer(server.pids);
        dead.broken = true;
        // what follows is not the server's doing (it is dead): its timeline would only explain a
        // failure with the abort we caused, so the evidence ends here
        await dead.evidence?.close().catch(() => {});
        dead.evidence = null;
        // the open fd still reaches its backing file (KERNEL-RULES I1) when it is in passthrough
        const b = Buffer.alloc(4096);
        t.note('read on the open fd after the kill', await preadAsync(fd, b, 0).then((n) => `${n} bytes`, errnoOf));
        // close(2) releases the fd whatever it returns (its FLUSH meets the dead connection: ENOTCONN)
        closed = true;
        t.note('close after the kill', await closeAsync(fd).then(() => 'OK', errnoOf));
        await new Promise((r) => setTimeout(r, 200));
        const pinned = (await usedBytes(store)) - base;
        t.note('in use after the kill and the last close, mount still there', `${(pinned / MiB).toFixed(1)} MiB`);
        const mp = dead.mountpoint;
        const removed = await umount2Async(mp, 0).then(
          () => 'umount',
          async () =>
            umount2Async(mp, MOUNT.MNT_DETACH).then(
              () => 'lazy umount',
              (e: unknown) => String((e as Error).message),
            ),
        );
        t.note('removal', removed);
        check(!fuseMountAt(mp), `the dead server's mount at ${mp} could not be removed (${removed})`);
        let left = (await usedBytes(store)) - base;
        const by = Date.now() + 3000;
        while (left > MiB / 2 && Date.now() < by) {
          await new Promise((r) => setTimeout(r, 25));
          left = (await usedBytes(store)) - base;
        }
        t.note('in use after the removal', `${(left / MiB).toFixed(1)} MiB`);
        if (left > MiB / 2) {
          const holders = await holdersOf(dead.backing(rel));
          t.note('holders', holders);
          fail(
            `${(left / MiB).toFixed(1)} MiB of the deleted /${rel} (${size / MiB} MiB) stayed in use on the backing filesystem for 3 s after the killed server's mount was removed: ` +
              (holders.length
                ? `${holders.map((h) => `process ${h.pid} (${h.comm}${server.pids.includes(h.pid) ? ', the server' : ', not one fusecert started or killed'}) holds it as fd ${h.fd}`).join('; ')}: a helper the server started inherited its fds (no O_CLOEXEC) and outlived it`
                : 'no process holds it open, so the kernel still pins it (KERNEL-RULES I2 says the ids go with the mount)'),
          );
        }
      } finally {
        if (!closed) await closeAsync(fd).catch(() => {});
      }
    },
  });
});
