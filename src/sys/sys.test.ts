import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import * as sys from './index.ts';

const { O, SEEK, FALLOC_FL, PROT, MAP, MS, AT, STATX } = sys;

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fusecert-sys-'));
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

function pattern(n: number, seed = 7): Buffer {
  const b = Buffer.alloc(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

function file(name: string, data?: Buffer): string {
  const p = path.join(dir, name);
  if (data) fs.writeFileSync(p, data);
  return p;
}

describe('errno', () => {
  test('errnoName covers Linux names and prefers the kernel spelling', () => {
    expect(sys.errnoName(5)).toBe('EIO');
    expect(sys.errnoName(-2)).toBe('ENOENT');
    expect(sys.errnoName(11)).toBe('EAGAIN');
    expect(sys.errnoName(95)).toBe('EOPNOTSUPP');
    expect(sys.errnoName(40)).toBe('ELOOP');
    expect(sys.errnoName(21)).toBe('EISDIR');
    expect(sys.errnoName(107)).toBe('ENOTCONN');
    expect(sys.errnoName(512)).toBe('ERESTARTSYS');
    expect(sys.errnoName(9999)).toBe('E9999');
    expect(sys.errnoNumber('EBADF')).toBe(9);
  });

  test('splice on a bad fd throws SysError EBADF', () => {
    let err: unknown;
    try {
      sys.splice(-1, null, -1, null, 10, 0);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(sys.SysError);
    const se = err as sys.SysError;
    expect(se.code).toBe('EBADF');
    expect(se.errno).toBe(9);
    expect(se.syscall).toBe('splice');
    expect(se.message).toMatch(/^splice\(fd_in=-1, .*\) failed: EBADF \(Bad file descriptor\)$/);
  });

  test('async forms reject the same way, with the worker thread errno', async () => {
    await expect(sys.spliceAsync(-1, null, -1, null, 10, 0)).rejects.toMatchObject({ code: 'EBADF', syscall: 'splice' });
    await expect(sys.openAsync(path.join(dir, 'missing'), O.O_RDONLY)).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(sys.closeAsync(-1)).rejects.toMatchObject({ code: 'EBADF' });
    // Many concurrent failing calls on several workers: each keeps its own errno.
    const results = await Promise.allSettled([
      ...Array.from({ length: 8 }, () => sys.openAsync(path.join(dir, 'nope'), O.O_RDONLY)),
      ...Array.from({ length: 8 }, () => sys.fallocateAsync(-1, 0, 0, 1)),
      ...Array.from({ length: 8 }, () => sys.openAsync(dir, O.O_WRONLY)),
    ]);
    const codes = results.map((r) => (r.status === 'rejected' ? (r.reason as sys.SysError).code : 'ok'));
    expect(codes).toEqual([...Array(8).fill('ENOENT'), ...Array(8).fill('EBADF'), ...Array(8).fill('EISDIR')]);
  });

  test('async forms resolve with the same values as sync forms', async () => {
    const p = file('async-eq', pattern(10000));
    const fd = await sys.openAsync(p, O.O_RDONLY);
    try {
      expect(await sys.lseekAsync(fd, 0, SEEK.SEEK_END)).toBe(sys.lseek(fd, 0, SEEK.SEEK_END));
      const a = Buffer.alloc(100);
      const b = Buffer.alloc(100);
      expect(await sys.preadAsync(fd, a, 1234)).toBe(sys.pread(fd, b, 1234));
      expect(a.equals(b)).toBe(true);
      expect(a.equals(pattern(10000).subarray(1234, 1334))).toBe(true);
    } finally {
      sys.close(fd);
    }
  });
});

describe('splice family', () => {
  test('splice file -> pipe -> file round trip at offsets', async () => {
    const data = pattern(200_000);
    const src = file('splice-src', data);
    const dst = file('splice-dst', Buffer.alloc(0));
    const fin = sys.open(src, O.O_RDONLY);
    const fout = sys.open(dst, O.O_WRONLY);
    const [r, w] = sys.pipe2(O.O_CLOEXEC);
    try {
      let moved = 0;
      const start = 4097,
        len = 150_003,
        outAt = 333;
      while (moved < len) {
        const n = sys.splice(fin, start + moved, w, null, Math.min(len - moved, 65536), 0);
        expect(n).toBeGreaterThan(0);
        let left = n;
        while (left > 0) {
          const m = await sys.spliceAsync(r, null, fout, BigInt(outAt + moved + (n - left)), left, 0);
          left -= m;
        }
        moved += n;
      }
      // explicit offsets leave file positions alone
      expect(sys.lseek(fin, 0, SEEK.SEEK_CUR)).toBe(0);
      const out = fs.readFileSync(dst);
      expect(out.length).toBe(outAt + len);
      expect(out.subarray(0, outAt).every((x) => x === 0)).toBe(true);
      expect(out.subarray(outAt).equals(data.subarray(start, start + len))).toBe(true);
    } finally {
      for (const fd of [fin, fout, r, w]) sys.close(fd);
    }
  });

  test('splice past EOF moves 0 bytes', () => {
    const src = file('splice-eof', pattern(100));
    const fin = sys.open(src, O.O_RDONLY);
    const [r, w] = sys.pipe2();
    try {
      expect(sys.splice(fin, 1000, w, null, 100, 0)).toBe(0);
    } finally {
      for (const fd of [fin, r, w]) sys.close(fd);
    }
  });

  test('vmsplice + tee', async () => {
    const [r1, w1] = sys.pipe2();
    const [r2, w2] = sys.pipe2();
    try {
      const msg = Buffer.from('hello through the pipe');
      expect(sys.vmsplice(w1, msg, 0)).toBe(msg.length);
      expect(await sys.teeAsync(r1, w2, msg.length, 0)).toBe(msg.length);
      const a = Buffer.alloc(64);
      const b = Buffer.alloc(64);
      const na = fs.readSync(r1, a);
      const nb = fs.readSync(r2, b);
      expect(a.subarray(0, na).toString()).toBe(msg.toString());
      expect(b.subarray(0, nb).toString()).toBe(msg.toString());
    } finally {
      for (const fd of [r1, w1, r2, w2]) sys.close(fd);
    }
  });

  test('sendfile file -> file with and without an offset', async () => {
    const data = pattern(70_000, 3);
    const src = file('sendfile-src', data);
    const dst = file('sendfile-dst', Buffer.alloc(0));
    const fin = sys.open(src, O.O_RDONLY);
    const fout = sys.open(dst, O.O_WRONLY);
    try {
      expect(sys.sendfile(fout, fin, 1000, 5000)).toBe(5000);
      expect(sys.lseek(fin, 0, SEEK.SEEK_CUR)).toBe(0);
      expect(await sys.sendfileAsync(fout, fin, null, 3000)).toBe(3000);
      expect(sys.lseek(fin, 0, SEEK.SEEK_CUR)).toBe(3000);
      const out = fs.readFileSync(dst);
      expect(out.equals(Buffer.concat([data.subarray(1000, 6000), data.subarray(0, 3000)]))).toBe(true);
    } finally {
      sys.close(fin);
      sys.close(fout);
    }
  });

  test('sendfile file -> socket', async () => {
    const data = pattern(50_000, 5);
    const src = file('sendfile-sock', data);
    const received: Buffer[] = [];
    const server = net.createServer((s) => s.on('data', (d) => received.push(d)));
    await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
    const port = (server.address() as net.AddressInfo).port;
    const client = net.connect(port, '127.0.0.1');
    await new Promise<void>((res) => client.on('connect', () => res()));
    const fin = sys.open(src, O.O_RDONLY);
    try {
      const sockFd = (client as unknown as { _handle: { fd: number } })._handle.fd;
      let sent = 0;
      while (sent < data.length) sent += await sys.sendfileAsync(sockFd, fin, sent, data.length - sent);
      await new Promise<void>((res) => {
        const t = setInterval(() => {
          if (Buffer.concat(received).length >= data.length) {
            clearInterval(t);
            res();
          }
        }, 5);
      });
      expect(Buffer.concat(received).equals(data)).toBe(true);
    } finally {
      sys.close(fin);
      client.destroy();
      await new Promise((res) => server.close(res));
    }
  });

  test('copy_file_range at offsets', async () => {
    const data = pattern(100_000, 11);
    const src = file('cfr-src', data);
    const dst = file('cfr-dst', Buffer.alloc(10));
    const fin = sys.open(src, O.O_RDONLY);
    const fout = sys.open(dst, O.O_WRONLY);
    try {
      let done = 0;
      while (done < 50_000) done += await sys.copyFileRangeAsync(fin, 123 + done, fout, 10 + done, 50_000 - done, 0);
      const out = fs.readFileSync(dst);
      expect(out.length).toBe(50_010);
      expect(out.subarray(10).equals(data.subarray(123, 50_123))).toBe(true);
      expect(() => sys.copyFileRange(fin, 0, fout, 0, 10, 1)).toThrow(/EINVAL/);
    } finally {
      sys.close(fin);
      sys.close(fout);
    }
  });
});

describe('fallocate and holes', () => {
  test('punch hole + SEEK_HOLE/SEEK_DATA', async () => {
    const p = file('holes', pattern(1 << 20, 13));
    const fd = sys.open(p, O.O_RDWR);
    try {
      sys.fallocate(fd, FALLOC_FL.FALLOC_FL_PUNCH_HOLE | FALLOC_FL.FALLOC_FL_KEEP_SIZE, 256 * 1024, 256 * 1024);
      expect(fs.fstatSync(fd).size).toBe(1 << 20);
      expect(sys.lseek(fd, 0, SEEK.SEEK_HOLE)).toBe(256 * 1024);
      expect(await sys.lseekAsync(fd, 256 * 1024, SEEK.SEEK_DATA)).toBe(512 * 1024);
      const b = Buffer.alloc(4096, 1);
      sys.pread(fd, b, 300 * 1024);
      expect(b.every((x) => x === 0)).toBe(true);
      // keep-size preallocation past EOF, then an error case
      await sys.fallocateAsync(fd, FALLOC_FL.FALLOC_FL_KEEP_SIZE, 1 << 20, 65536);
      expect(fs.fstatSync(fd).size).toBe(1 << 20);
      sys.fallocate(fd, 0, 0, 2 << 20);
      expect(fs.fstatSync(fd).size).toBe(2 << 20);
      expect(() => sys.fallocate(fd, FALLOC_FL.FALLOC_FL_PUNCH_HOLE, 0, 4096)).toThrow(sys.SysError); // needs KEEP_SIZE
      try {
        sys.lseek(fd, 10 << 20, SEEK.SEEK_DATA);
        expect.unreachable();
      } catch (e) {
        expect((e as sys.SysError).code).toBe('ENXIO');
      }
    } finally {
      sys.close(fd);
    }
  });
});

describe('mmap', () => {
  test('MAP_SHARED write + msync is visible through fs.readFileSync', async () => {
    const p = file('mmap-shared', pattern(3 * 4096, 17));
    const fd = sys.open(p, O.O_RDWR);
    const m = sys.mmap(fd, 3 * 4096, PROT.PROT_READ | PROT.PROT_WRITE, MAP.MAP_SHARED, 0);
    try {
      expect(m.read(0, 3 * 4096).equals(pattern(3 * 4096, 17))).toBe(true);
      m.write(5000, Buffer.from('written through the mapping'));
      await m.writeAsync(100, Buffer.from('async'));
      m.msync(MS.MS_SYNC);
      await m.msyncAsync(MS.MS_SYNC, 4096, 4096);
      const onDisk = fs.readFileSync(p);
      expect(onDisk.subarray(5000, 5027).toString()).toBe('written through the mapping');
      expect(onDisk.subarray(100, 105).toString()).toBe('async');
      expect((await m.readAsync(5000, 7)).toString()).toBe('written');
      expect(() => m.read(3 * 4096 - 1, 2)).toThrow(RangeError);
    } finally {
      m.munmap();
      sys.close(fd);
    }
  });

  test('MAP_PRIVATE writes stay private', async () => {
    const data = pattern(8192, 19);
    const p = file('mmap-private', data);
    const fd = sys.open(p, O.O_RDONLY);
    const m = await sys.mmapAsync(fd, 8192, PROT.PROT_READ | PROT.PROT_WRITE, MAP.MAP_PRIVATE, 0);
    try {
      m.write(0, Buffer.alloc(100, 0xaa));
      expect(m.read(0, 100).every((x) => x === 0xaa)).toBe(true);
      expect(fs.readFileSync(p).equals(data)).toBe(true);
    } finally {
      m.munmap();
      sys.close(fd);
    }
  });

  test('mmap errors carry errno', () => {
    const p = file('mmap-ro', pattern(4096));
    const fd = sys.open(p, O.O_RDONLY);
    try {
      expect(() => sys.mmap(fd, 4096, PROT.PROT_WRITE, MAP.MAP_SHARED, 0)).toThrow(/EACCES/);
      expect(() => sys.mmap(-1, 4096, PROT.PROT_READ, MAP.MAP_SHARED, 0)).toThrow(/EBADF/);
    } finally {
      sys.close(fd);
    }
  });
});

describe('statx', () => {
  test('fields match fs.statSync', async () => {
    const p = file('statx', pattern(12345));
    const st = fs.statSync(p, { bigint: true });
    for (const sx of [sys.statx(AT.AT_FDCWD, p), await sys.statxAsync(AT.AT_FDCWD, p)]) {
      expect(sx.mask & STATX.STATX_BASIC_STATS).toBe(STATX.STATX_BASIC_STATS);
      expect(sx.size).toBe(st.size);
      expect(sx.ino).toBe(st.ino);
      expect(BigInt(sx.mode)).toBe(st.mode);
      expect(BigInt(sx.nlink)).toBe(st.nlink);
      expect(BigInt(sx.uid)).toBe(st.uid);
      expect(BigInt(sx.gid)).toBe(st.gid);
      expect(sx.blocks).toBe(st.blocks);
      expect(BigInt(sx.blksize)).toBe(st.blksize);
      expect(sx.mtime.sec * 1_000_000_000n + BigInt(sx.mtime.nsec)).toBe(st.mtimeNs);
      expect(sx.ctime.sec * 1_000_000_000n + BigInt(sx.ctime.nsec)).toBe(st.ctimeNs);
      expect(sx.atime.sec * 1_000_000_000n + BigInt(sx.atime.nsec)).toBe(st.atimeNs);
      // dev: st_dev = makedev(major, minor)
      const dev = Number(st.dev);
      expect(sx.devMinor).toBe((dev & 0xff) | ((dev >>> 12) & ~0xff));
    }
    const fd = sys.open(p, O.O_PATH);
    try {
      expect(sys.statx(fd, '', AT.AT_EMPTY_PATH).size).toBe(12345n);
    } finally {
      sys.close(fd);
    }
    expect(() => sys.statx(AT.AT_FDCWD, path.join(dir, 'no-such'))).toThrow(/ENOENT/);
  });
});

describe('I/O with aligned buffers', () => {
  test('alignedBuffer is aligned and works with pread/pwrite (O_DIRECT where supported)', async () => {
    const ab = sys.alignedBuffer(8192, 4096);
    try {
      expect(ab.ptr % 4096n).toBe(0n);
      expect(ab.buf.length).toBe(8192);
      pattern(8192, 23).copy(ab.buf);
      const p = file('direct');
      let fd: number;
      try {
        fd = sys.open(p, O.O_RDWR | O.O_CREAT | O.O_DIRECT, 0o644);
      } catch (e) {
        // tmpfs before 6.6 refuses O_DIRECT
        expect((e as sys.SysError).code).toBe('EINVAL');
        fd = sys.open(p, O.O_RDWR | O.O_CREAT, 0o644);
      }
      try {
        expect(sys.pwrite(fd, ab, 4096)).toBe(8192);
        ab.buf.fill(0);
        expect(await sys.preadAsync(fd, ab, 4096)).toBe(8192);
        expect(ab.buf.equals(pattern(8192, 23))).toBe(true);
        expect(sys.pread(fd, ab, 4096 + 8192)).toBe(0);
      } finally {
        sys.close(fd);
      }
      expect(fs.readFileSync(p).subarray(4096).equals(pattern(8192, 23))).toBe(true);
    } finally {
      ab.free();
      ab.free();
    }
  });

  test('fsync, fdatasync, O_TMPFILE and O_PATH', async () => {
    const fd = sys.open(dir, O.O_TMPFILE | O.O_RDWR, 0o600);
    try {
      expect(sys.pwrite(fd, Buffer.from('abc'), 0)).toBe(3);
      sys.fsync(fd);
      await sys.fdatasyncAsync(fd);
    } finally {
      sys.close(fd);
    }
    const pfd = sys.open(dir, O.O_PATH | O.O_DIRECTORY);
    try {
      expect(() => sys.pread(pfd, Buffer.alloc(1), 0)).toThrow(/EBADF/);
    } finally {
      sys.close(pfd);
    }
  });
});

describe('ioctl, processes, mounts', () => {
  test('ioctl with a buffer and with a value', async () => {
    const [r, w] = sys.pipe2();
    try {
      fs.writeSync(w, Buffer.from('12345'));
      const n = Buffer.alloc(4);
      expect(sys.ioctl(r, 0x541b /* FIONREAD */, n)).toBe(0);
      expect(n.readInt32LE(0)).toBe(5);
      await expect(sys.ioctlAsync(r, 0x4010e501, Buffer.alloc(16))).rejects.toMatchObject({ code: 'ENOTTY' });
      expect(() => sys.ioctl(-1, 0x541b, 0)).toThrow(/EBADF/);
    } finally {
      sys.close(r);
      sys.close(w);
    }
  });

  test('gettid, pidfd_open, pidfd_getfd', () => {
    expect(sys.gettid()).toBe(process.pid);
    const p = file('pidfd', Buffer.from('borrowed'));
    const fd = sys.open(p, O.O_RDONLY);
    const pidfd = sys.pidfdOpen(process.pid);
    try {
      const dup = sys.pidfdGetfd(pidfd, fd);
      try {
        const b = Buffer.alloc(8);
        expect(sys.pread(dup, b, 0)).toBe(8);
        expect(b.toString()).toBe('borrowed');
      } finally {
        sys.close(dup);
      }
      expect(() => sys.pidfdOpen(0x7ffffff0)).toThrow(/ESRCH/);
    } finally {
      sys.close(pidfd);
      sys.close(fd);
    }
  });

  const root = process.getuid?.() === 0;
  test.skipIf(!root)('mount tmpfs and umount2 (needs root)', async () => {
    const mnt = fs.mkdtempSync(path.join(os.tmpdir(), 'fusecert-mnt-'));
    try {
      await sys.mountAsync('fusecert-test', mnt, 'tmpfs', 0, 'size=4m,mode=0700');
      try {
        fs.writeFileSync(path.join(mnt, 'x'), 'y');
        expect(sys.statx(AT.AT_FDCWD, mnt).mntId).not.toBe(sys.statx(AT.AT_FDCWD, dir).mntId);
      } finally {
        sys.umount2(mnt, 0);
      }
      expect(fs.existsSync(path.join(mnt, 'x'))).toBe(false);
      await expect(sys.umount2Async(mnt, 0)).rejects.toMatchObject({ code: 'EINVAL' });
    } finally {
      fs.rmdirSync(mnt);
    }
  });
});

describe('preadv2/pwritev2 and Linux AIO', () => {
  test('pwritev2 with RWF_APPEND writes at the end whatever the offset; preadv2 reads at an offset', async () => {
    const data = pattern(10000, 21);
    const p = file('rwf.bin', data);
    const fd = sys.open(p, O.O_RDWR);
    const b = sys.alignedBuffer(8192);
    try {
      b.buf.write('tail!');
      expect(await sys.pwritev2Async(fd, b, 5, 0, sys.RWF.RWF_APPEND)).toBe(5);
      expect(fs.readFileSync(p).subarray(10000).toString()).toBe('tail!');
      expect(fs.readFileSync(p).subarray(0, 5)).toEqual(data.subarray(0, 5));
      expect(sys.preadv2(fd, b, 100, 4000, 0)).toBe(100);
      expect(b.buf.subarray(0, 100)).toEqual(data.subarray(4000, 4100));
      expect(() => sys.pwritev2(fd, b, 8193, 0, 0)).toThrow(RangeError);
      expect(() => sys.preadv2(fd, b, 10, 0, 0x4000_0000)).toThrow(/EOPNOTSUPP|EINVAL/);
    } finally {
      b.free();
      sys.close(fd);
    }
  });

  test('aioRun: preads, pwrites and fdsync complete with their results in order, a bad fd as -EBADF', async () => {
    const data = pattern(300000, 22);
    const p = file('aio.bin', data);
    const fd = sys.open(p, O.O_RDWR);
    const r1 = sys.alignedBuffer(65536);
    const r2 = sys.alignedBuffer(65536);
    const w = sys.alignedBuffer(4096);
    try {
      w.buf.fill(0x5a);
      const res = await sys.aioRun([
        { op: 'pread', fd, buf: r1, len: 65536, offset: 4095 },
        { op: 'pread', fd, buf: r2, len: 65536, offset: 299000 },
        { op: 'pwrite', fd, buf: w, len: 4096, offset: 100 },
        { op: 'fdsync', fd },
      ]);
      expect(res).toEqual([65536, 1000, 4096, 0]);
      expect(r1.buf).toEqual(data.subarray(4095, 4095 + 65536));
      expect(r2.buf.subarray(0, 1000)).toEqual(data.subarray(299000));
      expect(fs.readFileSync(p).subarray(100, 4196)).toEqual(Buffer.alloc(4096, 0x5a));
      // io_submit refuses an iocb on a closed fd before queueing it
      const closed = sys.open(p, O.O_RDONLY);
      sys.close(closed);
      await expect(sys.aioRun([{ op: 'pread', fd: closed, buf: r1, len: 10, offset: 0 }])).rejects.toThrow(/EBADF/);
    } finally {
      for (const b of [r1, r2, w]) b.free();
      sys.close(fd);
    }
  });
});
