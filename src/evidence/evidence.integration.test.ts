// Evidence on real mounts: needs root, tracefs with the fuse tracepoints, bindfs, and for the
// passthrough cases servers/ptfs/ptfs (make -C servers/ptfs). Each case mounts in its own
// mkdtemp dir and always unmounts, stops the server it started and closes its session.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { EvidenceLostError, EvidenceSession, EvidenceUnavailableError, TRACEFS_ROOT, countOf, sweepStaleInstances, tracefsStatus } from './index.ts';
import { haveBindfs, havePtfs, startMount, type TestMount } from './testing.ts';

const st = await tracefsStatus();
const noTrace = st.available ? '' : ` [skipped: ${st.reason}]`;
const noBindfs = !st.available || !haveBindfs();
const noPtfs = !st.available || !havePtfs();
const why = (cond: boolean, what: string) => (cond ? ` [skipped: ${st.available ? what : st.reason}]` : '');
if (!st.available) console.warn(`evidence integration tests skipped: ${st.reason}`);

const MiB = 1 << 20;

async function withMount<T>(
  kind: 'bindfs' | 'ptfs',
  args: string[],
  fill: (src: string) => void,
  fn: (m: TestMount, s: EvidenceSession) => Promise<T>,
  opts: { bufferKb?: number; pollMs?: number; readAtFill?: number } = {},
): Promise<T> {
  const m = await startMount(kind, args, fill);
  let s: EvidenceSession | undefined;
  try {
    s = await EvidenceSession.open({ connection: m.connection, pids: [m.pid], label: 'integration', ...opts });
    return await fn(m, s);
  } finally {
    await s?.close();
    await m.stop();
  }
}

async function openReadClose(mnt: string, n: number) {
  const b = Buffer.alloc(4096);
  for (let i = 0; i < n; i++) {
    const fh = await fs.promises.open(path.join(mnt, `f${i}`), 'r');
    try {
      await fh.read(b, 0, b.length, 0);
    } finally {
      await fh.close();
    }
  }
}

/** RELEASE is sent after close() returns: wait until the ledger stops changing. */
async function settle(s: EvidenceSession, until: () => boolean, ms = 3000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    await s.flush();
    if (until()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
}

function files(n: number, size: number) {
  return (src: string) => {
    for (let i = 0; i < n; i++) fs.writeFileSync(path.join(src, `f${i}`), Buffer.alloc(size, i & 0xff));
  };
}

const ours = () => fs.readdirSync(path.join(TRACEFS_ROOT, 'instances')).filter((n) => n.startsWith(`fusecert-${process.pid}-`));

afterAll(() => {
  if (st.available) expect(ours()).toEqual([]);
});

describe('evidence on real mounts', () => {
  test('tracefs status names a reason when unavailable', async () => {
    if (st.available) {
      expect(st.fuseEvents).toBe(true);
      const bad = await tracefsStatus('/nonexistent/fusecert-tracefs');
      expect(bad.available).toBe(false);
      expect(bad.reason).toMatch(/^tracefs unavailable: /);
      await expect(EvidenceSession.open({ connection: 1, pids: [], root: '/nonexistent/fusecert-tracefs' })).rejects.toBeInstanceOf(EvidenceUnavailableError);
    } else {
      expect(st.reason).toMatch(/^tracefs unavailable: /);
    }
  });

  test.skipIf(noBindfs)(`bindfs: reading a file shows FUSE_READ in the window${why(noBindfs, 'bindfs not installed')}`, async () => {
    await withMount('bindfs', [], files(1, 4 * MiB), async (m, s) => {
      expect(s.instancePaths.every((p) => fs.existsSync(p))).toBe(true);
      const w = await s.window('read', () => fs.promises.readFile(path.join(m.mnt, 'f0')));
      expect(w.result.length).toBe(4 * MiB);
      expect(countOf(w.requests, 'FUSE_READ')).toBeGreaterThan(0);
      expect(countOf(w.requests, 'FUSE_OPEN')).toBe(1);
      expect(w.endTs).toBeGreaterThanOrEqual(w.startTs);
      console.log(`bindfs 4 MiB read: ${JSON.stringify(w.requests.counts)}`);
      // nothing outside the window leaks in
      const idle = await s.window('idle', () => undefined);
      expect(idle.requests.total).toBe(0);
    });
  });

  test.skipIf(noBindfs)(`window: fn errors are rethrown after the end marker${why(noBindfs, 'bindfs not installed')}`, async () => {
    await withMount('bindfs', [], files(1, 10), async (m, s) => {
      await expect(
        s.window('boom', async () => {
          await fs.promises.readFile(path.join(m.mnt, 'f0'));
          throw new Error('boom');
        }),
      ).rejects.toThrow('boom');
      const again = await s.window('after', () => fs.promises.stat(path.join(m.mnt, 'nope')).catch(() => null));
      expect(again.requests.counts.FUSE_LOOKUP).toBe(1);
    });
  });

  test.skipIf(noPtfs)(
    `ptfs: 64 MiB read in passthrough sends no FUSE_READ; without passthrough ~size/max_read${why(noPtfs, 'servers/ptfs/ptfs not built')}`,
    async () => {
      const size = 64 * MiB;
      const pt = await withMount('ptfs', [], files(1, size), async (m, s) => {
        const w = await s.window('read', () => fs.promises.readFile(path.join(m.mnt, 'f0')));
        expect(w.result.length).toBe(size);
        await settle(s, () => s.ledger().liveCount() === 0);
        return { w, ledger: s.ledger() };
      });
      expect(countOf(pt.w.requests, 'FUSE_READ')).toBe(0);
      expect(pt.w.ledger.opens.filter((o) => o.ok)).toHaveLength(1);
      const nopt = await withMount('ptfs', ['--no-passthrough'], files(1, size), async (m, s) => {
        return s.window('read', () => fs.promises.readFile(path.join(m.mnt, 'f0')));
      });
      const reads = countOf(nopt.requests, 'FUSE_READ');
      const bytes = nopt.requests.replyBytes.FUSE_READ ?? 0;
      console.log(
        `64 MiB read: passthrough FUSE_READ=0, no-passthrough FUSE_READ=${reads} (${(bytes / reads / 1024).toFixed(0)} KiB per reply), ledger ${nopt.ledger.summary()}`,
      );
      expect(reads).toBeGreaterThanOrEqual(size / (1 * MiB));
      expect(reads).toBeLessThanOrEqual(size / 4096);
      expect(bytes).toBeGreaterThanOrEqual(size);
      expect(nopt.ledger.opens).toHaveLength(0);
    },
  );

  test.skipIf(noPtfs)(`ptfs ledger: open/read/close of 100 files balances${why(noPtfs, 'servers/ptfs/ptfs not built')}`, async () => {
    await withMount('ptfs', [], files(100, 8192), async (m, s) => {
      const w = await s.window('100 files', () => openReadClose(m.mnt, 100));
      await settle(s, () => s.ledger().closes.length >= 100);
      const l = s.ledger();
      console.log(`100 files: window ${JSON.stringify(w.requests.counts)}; ${l.summary()}; threads ${new Set(l.opens.map((o) => o.tid)).size}`);
      expect(countOf(w.requests, 'FUSE_READ')).toBe(0);
      expect(l.opens.filter((o) => o.ok)).toHaveLength(100);
      expect(l.closes.filter((c) => c.ok)).toHaveLength(100);
      expect(l.liveCount()).toBe(0);
      expect(l.failedOpens()).toEqual([]);
      expect(l.failedCloses()).toEqual([]);
      expect(l.opens.every((o) => o.tgid === m.pid)).toBe(true);
      const pr = l.perRequest();
      expect(pr.opens.filter((a) => a.request?.opcode === 'FUSE_OPEN')).toHaveLength(100);
    });
  });

  /** events the kernel handed to readers of an instance so far ("read events" of the per-CPU stats) */
  const readEvents = (dir: string) =>
    fs
      .readdirSync(path.join(dir, 'per_cpu'))
      .map((cpu) => Number(/^read events: (\d+)/m.exec(fs.readFileSync(path.join(dir, 'per_cpu', cpu, 'stats'), 'latin1'))?.[1] ?? NaN))
      .reduce((a, b) => a + b, 0);

  test.skipIf(noPtfs)(`the reader leaves the buffers alone until a flush or a fill${why(noPtfs, 'servers/ptfs/ptfs not built')}`, async () => {
    // below the fill nothing is read however many polls pass; at readAtFill 0 every poll reads
    await withMount(
      'ptfs',
      [],
      files(20, 4096),
      async (m, s) => {
        await s.flush();
        const before = readEvents(s.instancePath);
        await openReadClose(m.mnt, 20);
        await new Promise((r) => setTimeout(r, 100)); // ten polls
        expect(readEvents(s.instancePath)).toBe(before);
        const w = await s.window('after', () => fs.promises.stat(path.join(m.mnt, 'f0')));
        expect(readEvents(s.instancePath)).toBeGreaterThan(before);
        expect(w.requests.total).toBeLessThanOrEqual(2);
        expect(s.requestsOf().counts.FUSE_OPEN).toBe(20);
      },
      { pollMs: 10 },
    );
    await withMount(
      'ptfs',
      [],
      files(20, 4096),
      async (m, s) => {
        await s.flush();
        const before = readEvents(s.instancePath);
        await openReadClose(m.mnt, 20);
        const until = Date.now() + 5000;
        while (readEvents(s.instancePath) === before && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
        expect(readEvents(s.instancePath)).toBeGreaterThan(before);
      },
      { pollMs: 10, readAtFill: 0 },
    );
  });

  test.skipIf(noPtfs)(`backing ioctls of other processes are not the server's${why(noPtfs, 'servers/ptfs/ptfs not built')}`, async () => {
    // two ptfs mounts, a session on each: each ledger holds only its own server's ioctls
    const other = await startMount('ptfs', [], files(5, 4096));
    try {
      await withMount('ptfs', [], files(5, 4096), async (m, s) => {
        const w = await s.window('both', async () => {
          await openReadClose(other.mnt, 5);
          await openReadClose(m.mnt, 3);
        });
        await settle(s, () => s.ledger().closes.length >= 3);
        expect(countOf(w.requests, 'FUSE_OPEN')).toBe(3);
        expect(s.ledger().opens.filter((o) => o.ok)).toHaveLength(3);
        expect(s.ledger().opens.every((o) => o.tgid === m.pid)).toBe(true);
      });
    } finally {
      await other.stop();
    }
  });

  test.skipIf(noPtfs)(`addPids: ioctls count only once the server's threads are added${why(noPtfs, 'servers/ptfs/ptfs not built')}`, async () => {
    const m = await startMount('ptfs', [], files(4, 4096));
    let s: EvidenceSession | undefined;
    try {
      s = await EvidenceSession.open({ connection: m.connection, pids: [] });
      await openReadClose(m.mnt, 2);
      await settle(s, () => false, 200);
      expect(s.ledger().opens).toHaveLength(0);
      expect(s.requestsOf().counts.FUSE_OPEN).toBe(2);
      s.addPids([m.pid]);
      await openReadClose(m.mnt, 4);
      await settle(s!, () => s!.ledger().closes.length >= 4);
      expect(s.ledger().opens.filter((o) => o.ok)).toHaveLength(4);
      expect(s.ledger().liveCount()).toBe(0);
    } finally {
      await s?.close();
      await m.stop();
    }
  });

  test.skipIf(noPtfs)(`ptfs --defect leak-backing-id leaves live ids${why(noPtfs, 'servers/ptfs/ptfs not built')}`, async () => {
    await withMount('ptfs', ['--defect', 'leak-backing-id'], files(20, 4096), async (m, s) => {
      await openReadClose(m.mnt, 20);
      await settle(s, () => false, 300);
      const l = s.ledger();
      console.log(`leak-backing-id: ${l.summary()}`);
      expect(l.liveCount()).toBe(20);
      expect(l.neverClosed()).toBe(20);
      expect(l.closes).toHaveLength(0);
    });
  });

  test.skipIf(noPtfs)(`ptfs --defect double-close shows failed closes with ENOENT${why(noPtfs, 'servers/ptfs/ptfs not built')}`, async () => {
    await withMount('ptfs', ['--defect', 'double-close'], files(20, 4096), async (m, s) => {
      await openReadClose(m.mnt, 20);
      await settle(s, () => s.ledger().closes.length >= 40);
      const l = s.ledger();
      console.log(`double-close: ${l.summary()}`);
      expect(l.failedCloses()).toHaveLength(20);
      expect(l.failedCloses().every((c) => c.code === 'ENOENT')).toBe(true);
      expect(l.liveCount()).toBe(0);
    });
  });

  test.skipIf(noPtfs)(`an overrun ring buffer fails loudly with EvidenceLostError${why(noPtfs, 'servers/ptfs/ptfs not built')}`, async () => {
    // a cold FUSE page cache: each file is read through the server once, ~1000 events in all
    await withMount(
      'ptfs',
      ['--no-passthrough'],
      files(4, 16 * MiB),
      async (m, s) => {
        let err: unknown;
        try {
          await s.window('flood', async () => {
            for (let i = 0; i < 4; i++) await fs.promises.readFile(path.join(m.mnt, `f${i}`));
          });
        } catch (e) {
          err = e;
        }
        expect(err).toBeInstanceOf(EvidenceLostError);
        expect(String(err)).toMatch(/overrun/);
        await expect(s.flush()).rejects.toBeInstanceOf(EvidenceLostError);
      },
      { bufferKb: 4, pollMs: 0 },
    );
  });

  test.skipIf(!st.available)(`sweepStaleInstances removes instances of dead runs only${noTrace}`, async () => {
    const dead = spawnSync('true').pid!;
    const base = path.join(TRACEFS_ROOT, 'instances');
    const stale = `fusecert-${dead}-0badc0de`;
    const alive = `fusecert-${process.pid}-0badc0de`;
    fs.mkdirSync(path.join(base, stale));
    fs.mkdirSync(path.join(base, alive));
    try {
      const removed = sweepStaleInstances();
      // gone (another fusecert run of the test suite may have swept it first: that is the point)
      expect(fs.existsSync(path.join(base, stale))).toBe(false);
      expect(removed).not.toContain(alive);
      expect(fs.existsSync(path.join(base, alive))).toBe(true);
      expect(sweepStaleInstances({ alsoRunPid: process.pid })).toContain(alive);
    } finally {
      for (const n of [stale, alive]) if (fs.existsSync(path.join(base, n))) fs.rmdirSync(path.join(base, n));
    }
  });

  test.skipIf(!st.available)(`close removes the instances, also when called twice${noTrace}`, async () => {
    const registered: string[] = [];
    const forgotten: string[] = [];
    const s = await EvidenceSession.open({
      connection: 1,
      pids: [process.pid],
      registerInstance: (p) => {
        // registered before it exists, so a process killed right after the mkdir leaves it to the sweep
        expect(fs.existsSync(p)).toBe(false);
        registered.push(p);
        return () => {
          expect(fs.existsSync(p)).toBe(false); // forgotten only once it is gone
          forgotten.push(p);
        };
      },
    });
    expect(registered).toEqual(s.instancePaths);
    expect(registered.length).toBeGreaterThanOrEqual(1);
    expect(registered.every((p) => fs.existsSync(p))).toBe(true);
    expect(path.basename(s.instancePath)).toMatch(new RegExp(`^fusecert-${process.pid}-[0-9a-f]{8}$`));
    await s.close();
    await s.close();
    expect(registered.some((p) => fs.existsSync(p))).toBe(false);
    expect(forgotten.sort()).toEqual([...registered].sort());
    void os;
  });
});
