// SPL: splice(2) and sendfile(2) through the mount, with real syscalls (src/sys, worker-thread forms).
// Pipes hold 64 KiB by default, so transfers go in chunks of at most PIPE_CHUNK and are drained
// (or filled) with async reads/writes between the splices.
import { open, readFile, writeFile, mkdtemp, rm } from 'node:fs/promises';
import { read as fsRead, write as fsWrite, close as fsClose } from 'node:fs';
import { promisify } from 'node:util';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { clause, forEachVariant, check, fail, expectBytes, errnoOf, pattern, loadTree, expectFile, applyWrite } from '../src/harness/index.ts';
import { requestsDuring, windowSummary, counts, serverIoCause } from '../src/harness/index.ts';
import { countOf, type EvidenceWindow } from '../src/evidence/index.ts';
import { spliceAsync, sendfileAsync, pipe2Async, lseekAsync, SEEK, O } from '../src/sys/index.ts';

const tree = loadTree('basic');
const PIPE_CHUNK = 65536;
const readP = promisify(fsRead);
const writeP = promisify(fsWrite);
const closeP = promisify(fsClose);

async function drain(fd: number, n: number): Promise<Buffer> {
  const buf = Buffer.alloc(n);
  let got = 0;
  while (got < n) {
    const { bytesRead: r } = await readP(fd, buf, got, n - got, null);
    if (r === 0) break;
    got += r;
  }
  return buf.subarray(0, got);
}

async function fill(fd: number, data: Buffer): Promise<void> {
  let put = 0;
  while (put < data.length) put += (await writeP(fd, data, put, data.length - put, null)).bytesWritten;
}

async function withPipe<T>(fn: (r: number, w: number) => Promise<T>): Promise<T> {
  const [r, w] = await pipe2Async();
  try {
    return await fn(r, w);
  } finally {
    await closeP(r).catch(() => {});
    await closeP(w).catch(() => {});
  }
}

/** splice len bytes of fd from off into a pipe and out again: the bytes, fewer only at EOF. */
async function spliceOut(fd: number, off: number, len: number): Promise<Buffer> {
  return withPipe(async (r, w) => {
    const parts: Buffer[] = [];
    let done = 0;
    while (done < len) {
      const n = await spliceAsync(fd, off + done, w, null, Math.min(PIPE_CHUNK, len - done));
      if (n === 0) break;
      parts.push(await drain(r, n));
      done += n;
    }
    return Buffer.concat(parts);
  });
}

/** Put data into a pipe and splice it into fd at off (or at the file position when off is null). */
async function spliceIn(fd: number, off: number | null, data: Buffer): Promise<void> {
  await withPipe(async (r, w) => {
    let done = 0;
    while (done < data.length) {
      const chunk = data.subarray(done, done + PIPE_CHUNK);
      await fill(w, chunk);
      let moved = 0;
      while (moved < chunk.length) {
        const n = await spliceAsync(r, null, fd, off === null ? null : off + done + moved, chunk.length - moved);
        if (n === 0) fail(`splice from a pipe holding ${chunk.length - moved} bytes into the file returned 0`);
        moved += n;
      }
      done += chunk.length;
    }
  });
}

forEachVariant({}, (mount) => {
  clause({
    id: 'SPL-001',
    level: 'MUST',
    title: 'splice file->pipe at offsets',
    mount,
    body: async (t) => {
      const f9 = tree.files.find((f) => f.size === 1048579)!;
      const f10 = tree.files.find((f) => f.size > 3 * 1048576)!;
      const cases: [typeof f9, number, number][] = [
        [f9, 0, PIPE_CHUNK],
        [f9, 1, 4096],
        [f9, 4095, 3 * PIPE_CHUNK + 5],
        [f9, 131071, 131075],
        [f9, 1048575, PIPE_CHUNK], // short at EOF
        [f10, 1048573, 1048576 + 6],
      ];
      for (const [f, off, len] of cases) {
        const fh = await open(mount.path(f.path), 'r');
        try {
          const got = await spliceOut(fh.fd, off, len);
          const want = Math.min(len, f.size - off);
          expectBytes(got, pattern(f.seed, want, off), `splice of ${len} bytes of ${f.path} at offset ${off} into a pipe`);
        } finally {
          await fh.close();
        }
      }
      // a file written through the mount, spliced back
      const data = pattern(1101, 300001);
      await writeFile(mount.path('spl-001.bin'), data);
      const fh = await open(mount.path('spl-001.bin'), 'r');
      try {
        expectBytes(await spliceOut(fh.fd, 4097, 300001), data.subarray(4097), 'splice into a pipe of a file just written through the mount');
      } finally {
        await fh.close();
      }
      t.note('cases', cases.length + 1);
    },
  });

  clause({
    id: 'SPL-002',
    level: 'MUST',
    title: 'splice pipe->file at offsets',
    mount,
    body: async (t) => {
      const rel = 'spl-002.bin';
      const fh = await open(mount.path(rel), 'w+');
      let model: Buffer = Buffer.alloc(0);
      try {
        const cases: [number, number][] = [
          [4093, PIPE_CHUNK],
          [131071, 1],
          [1048573, 3 * PIPE_CHUNK + 7],
          [0, 4097],
          [2000, 131075],
        ];
        for (const [off, len] of cases) {
          const data = pattern(1200 + off, len);
          await spliceIn(fh.fd, off, data);
          model = applyWrite(model, off, data);
        }
        const st = await fh.stat();
        check(st.size === model.length, `after splicing into the file, fstat showed size ${st.size}, expected ${model.length}`);
      } finally {
        await fh.close();
      }
      await expectFile(mount, rel, model, 'file written by splice from a pipe');
      t.note('size', model.length);
    },
  });

  clause({
    id: 'SPL-003',
    level: 'MUST',
    title: 'sendfile file->file',
    mount,
    body: async (t) => {
      const f10 = tree.files.find((f) => f.size > 3 * 1048576)!;
      const rel = 'spl-003.bin';
      const src = await open(mount.path(f10.path), 'r');
      const dst = await open(mount.path(rel), 'w+');
      const count = 2 * 1048576 + 3;
      let model: Buffer = Buffer.alloc(0);
      try {
        await lseekAsync(dst.fd, 4097, SEEK.SEEK_SET);
        let done = 0;
        while (done < count) {
          const n = await sendfileAsync(dst.fd, src.fd, 12345 + done, count - done);
          if (n === 0) fail(`sendfile returned 0 after ${done} of ${count} bytes`);
          done += n;
        }
        model = applyWrite(model, 4097, pattern(f10.seed, count, 12345));
      } finally {
        await src.close();
        await dst.close();
      }
      await expectFile(mount, rel, model, `sendfile of ${count} bytes from ${f10.path}@12345 to ${rel}@4097`);
      // and from the mount to a file outside it
      const dir = await mkdtemp(path.join(os.tmpdir(), 'fusecert-spl-'));
      try {
        const s = await open(mount.path(rel), 'r');
        const d = await open(path.join(dir, 'out'), 'w+');
        try {
          let done = 0;
          while (done < 1048579) {
            const n = await sendfileAsync(d.fd, s.fd, 4095 + done, 1048579 - done);
            if (n === 0) break;
            done += n;
          }
        } finally {
          await s.close();
          await d.close();
        }
        expectBytes(await readFile(path.join(dir, 'out')), model.subarray(4095, 4095 + 1048579), 'sendfile from the mount to a file on another filesystem');
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
      t.note('bytes', count);
    },
  });

  clause({
    id: 'SPL-004',
    level: 'MUST',
    title: 'sendfile file->socket',
    mount,
    body: async (t) => {
      const f9 = tree.files.find((f) => f.size === 1048579)!;
      const off = 7;
      const count = f9.size - off;
      const received: Buffer[] = [];
      let got = 0;
      const server = net.createServer();
      const done = new Promise<void>((resolve) => {
        server.on('connection', (s) => {
          s.on('data', (d: Buffer) => {
            received.push(d);
            got += d.length;
            if (got >= count) resolve();
          });
          s.on('end', () => resolve());
        });
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      const port = (server.address() as net.AddressInfo).port;
      const client = net.connect(port, '127.0.0.1');
      await new Promise<void>((r, j) => client.once('connect', r).once('error', j));
      const sockFd = (client as unknown as { _handle: { fd: number } })._handle.fd;
      const fh = await open(mount.path(f9.path), 'r');
      let eagain = 0;
      try {
        let sent = 0;
        while (sent < count) {
          let n: number;
          try {
            n = await sendfileAsync(sockFd, fh.fd, off + sent, count - sent);
          } catch (e) {
            if (errnoOf(e) !== 'EAGAIN') throw e;
            eagain++;
            await sleep(1);
            continue;
          }
          if (n === 0) fail(`sendfile to a socket returned 0 after ${sent} of ${count} bytes`);
          sent += n;
        }
        await Promise.race([done, sleep(10_000)]);
      } finally {
        await fh.close();
        client.destroy();
        await new Promise<void>((r) => server.close(() => r()));
      }
      t.note('EAGAIN retries', eagain);
      expectBytes(Buffer.concat(received), pattern(f9.seed, count, off), `bytes received over TCP from sendfile of ${f9.path}@${off}`);
    },
  });

  clause({
    id: 'SPL-005',
    level: 'MUST',
    title: 'splice past EOF returns 0',
    mount,
    body: async (t) => {
      const f = tree.files.find((x) => x.size === 4097)!;
      const fh = await open(mount.path(f.path), 'r');
      const counts: Record<string, number | string> = {};
      try {
        for (const off of [f.size, f.size + 1, f.size + 1_000_000]) {
          counts[`splice at ${off}`] = await withPipe((_r, w) => spliceAsync(fh.fd, off, w, null, 100)).catch(errnoOf);
          counts[`sendfile at ${off}`] = await withPipe((_r, w) => sendfileAsync(w, fh.fd, off, 100)).catch(errnoOf);
        }
        counts['splice of 100 at size-3'] = await withPipe((_r, w) => spliceAsync(fh.fd, f.size - 3, w, null, 100)).catch(errnoOf);
      } finally {
        await fh.close();
      }
      t.note('counts', counts);
      for (const [k, v] of Object.entries(counts)) {
        const want = k.endsWith('size-3') ? 3 : 0;
        check(v === want, `${k} of a ${f.size}-byte file returned ${v}, expected ${want}`);
      }
    },
  });

  clause({
    id: 'SPL-006',
    level: 'MUST',
    title: 'splice into an O_APPEND file behaves as on a local filesystem (6.18: EINVAL, file unchanged)',
    mount,
    body: async (t) => {
      // What the kernel does on a local filesystem is the contract: on 6.18 splice and sendfile into
      // an O_APPEND file fail with EINVAL and write nothing. The mount must behave the same.
      const initial = pattern(1600, 5003);
      const data = pattern(1601, 9000);
      const attempt = async (file: string) => {
        await writeFile(file, initial);
        const fh = await open(file, 'a');
        const res: Record<string, string> = {};
        try {
          res.splice = await spliceIn(fh.fd, null, data).then(() => 'OK', errnoOf);
          const src = await open(file.replace(/[^/]+$/, 'src'), 'w+');
          await src.write(data, 0, data.length, 0);
          res.sendfile = await sendfileAsync(fh.fd, src.fd, 0, data.length).then((n) => `OK ${n}`, errnoOf);
          await src.close();
        } finally {
          await fh.close();
        }
        return { res, after: await readFile(file) };
      };
      const dir = await mkdtemp(path.join(os.tmpdir(), 'fusecert-spl-'));
      let native: Awaited<ReturnType<typeof attempt>>;
      try {
        native = await attempt(path.join(dir, 'native'));
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
      const { mkdir } = await import('node:fs/promises');
      await mkdir(mount.path('spl-006'), { recursive: true });
      const fused = await attempt(mount.path('spl-006/app'));
      t.note('native', native.res);
      t.note('mount', fused.res);
      for (const k of ['splice', 'sendfile'] as const)
        check(
          fused.res[k]!.split(' ')[0] === native.res[k]!.split(' ')[0],
          `${k} into an O_APPEND file on the mount gave ${fused.res[k]}, while on a local filesystem it gives ${native.res[k]}`,
        );
      expectBytes(
        fused.after,
        native.after,
        `the O_APPEND file after splice and sendfile into it (expected what a local filesystem holds: ${native.after.length} bytes)`,
      );
      if (mount.claims.mirror) expectBytes(await readFile(mount.backing('spl-006/app')), native.after, 'the backing file of the O_APPEND file');
    },
  });
  // SPL-007/008: splice and sendfile of a passthrough file go to the backing file (KERNEL-RULES
  // F3), as read and write do (NEG-004/005): the bytes alone cannot tell the paths apart.
  clause({
    id: 'SPL-007',
    level: 'MUST',
    title: 'splice and sendfile from a passthrough-opened file send no FUSE_READ',
    mount,
    requires: ['passthrough', 'passthrough-data', 'passthrough-reads', 'tracefs', 'PLT-001'],
    body: async (t) => {
      // a file the page cache has not seen (written to the backing file on mirror servers): pages
      // cached by earlier clauses would hide FUSE_READs of an open that is not in passthrough
      const t9 = tree.files.find((x) => x.size === 1048579)!;
      const f = mount.claims.mirror ? { path: 'spl-007.bin', size: t9.size, seed: 1107 } : t9;
      if (mount.claims.mirror) await writeFile(mount.backing(f.path), pattern(f.seed, f.size));
      const win = await requestsDuring(mount, 'SPL-007 splice out', async () => {
        const fh = await open(mount.path(f.path), 'r');
        try {
          const spliced = await spliceOut(fh.fd, 0, f.size);
          // sendfile from the same fd into a pipe: the kernel's splice_read again, by another call
          const sent = await withPipe(async (r, w) => {
            const parts: Buffer[] = [];
            let done = 0;
            while (done < 262144) {
              const n = await sendfileAsync(w, fh.fd, 4093 + done, Math.min(PIPE_CHUNK, 262144 - done));
              if (n === 0) break;
              parts.push(await drain(r, n));
              done += n;
            }
            return Buffer.concat(parts);
          });
          return { spliced, sent };
        } finally {
          await fh.close();
        }
      });
      t.note('window', windowSummary(win));
      expectBytes(win.result.spliced, pattern(f.seed, f.size), `splice of /${f.path} into a pipe`);
      expectBytes(win.result.sent, pattern(f.seed, 262144, 4093), `sendfile of /${f.path} into a pipe`);
      expectNoServerSplice(win, 'FUSE_READ', `splicing ${f.size} bytes of /${f.path} (opened O_RDONLY) into a pipe and sendfile of 262144 more`);
    },
  });

  clause({
    id: 'SPL-008',
    level: 'MUST',
    title: 'splice into a passthrough-opened file sends no FUSE_WRITE',
    mount,
    requires: ['passthrough', 'passthrough-data', 'passthrough-writes', 'tracefs', 'PLT-001'],
    body: async (t) => {
      const rel = 'spl-008.bin';
      const data = pattern(1108, 1048576 + 4099);
      await writeFile(mount.path(rel), '');
      const win = await requestsDuring(mount, 'SPL-008 splice in', async () => {
        // O_WRONLY: what passthrough-writes claims (a server may pass through only write opens)
        const fh = await open(mount.path(rel), O.O_WRONLY);
        try {
          await spliceIn(fh.fd, 0, data);
        } finally {
          await fh.close();
        }
      });
      t.note('window', windowSummary(win));
      expectBytes(await readFile(mount.path(rel)), data, `read back of /${rel} after splicing into it`);
      if (mount.claims.mirror) expectBytes(await readFile(mount.backing(rel)), data, `the backing file of /${rel}`);
      expectNoServerSplice(win, 'FUSE_WRITE', `splicing ${data.length} bytes from a pipe into /${rel} (opened O_WRONLY)`);
    },
  });
});

/** Fail when a splice window sent `op` to the server: the data did not pass through the backing file. */
function expectNoServerSplice(win: EvidenceWindow, op: 'FUSE_READ' | 'FUSE_WRITE', what: string): void {
  const n = countOf(win.requests, op);
  if (n > 0) fail(`${what} sent ${counts(win.requests, [op])} to the server: ${serverIoCause(win)}`);
}
