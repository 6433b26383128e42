// The syscalls Node lacks, through one koffi binding of libc.so.6.
//
// Every call is defined once (both()) and exported in a synchronous form `foo(...)` and an
// asynchronous form `fooAsync(...)`.
// The async form goes through koffi's `fn.async`, which runs the C call on a libuv worker
// thread: a FUSE server that never answers blocks that worker, never the event loop, so the
// harness can still hit its deadline and abort the connection. (It does occupy one of the
// libuv pool's threads — UV_THREADPOOL_SIZE, 4 by default, shared with node:fs — until the
// abort releases it; the runner sizes the pool accordingly.)
//
// errno, and why it is right for both forms:
// - sync: koffi calls the C function on the main thread and returns; `koffi.errno()` reads
//   the main thread's errno. We read it as the very next thing after the call (no JS in
//   between can run a libc call that would clobber it), and only when the return value says
//   the call failed (glibc leaves errno alone on success, so a stale value cannot be mistaken
//   for a failure: we never consult it when the call succeeded).
// - async: errno is thread-local, so the worker thread's errno would be lost if we read it
//   later on the main thread. koffi 3 handles this (src/koffi/src/call.cc, AsyncCall):
//   `Execute()` copies the worker's errno into the call object right after the C function
//   returns, and `Complete()` installs that value as the main thread's errno for exactly the
//   duration of our callback (restoring the previous value afterwards). So `koffi.errno()`
//   read synchronously at the top of the callback is the errno of the call itself. We never
//   await anything before reading it. The unit tests check EBADF both ways.
// No C shim is compiled and no raw syscall(2) trick is needed.

import os from 'node:os';
import koffi from 'koffi';

const libc = koffi.load('libc.so.6');

// ---------------------------------------------------------------------------------------
// Constants (Linux x86_64 values)

export const O = {
  O_RDONLY: 0o0,
  O_WRONLY: 0o1,
  O_RDWR: 0o2,
  O_ACCMODE: 0o3,
  O_CREAT: 0o100,
  O_EXCL: 0o200,
  O_NOCTTY: 0o400,
  O_TRUNC: 0o1000,
  O_APPEND: 0o2000,
  O_NONBLOCK: 0o4000,
  O_DSYNC: 0o10000,
  O_ASYNC: 0o20000,
  O_DIRECT: 0o40000,
  O_LARGEFILE: 0o100000,
  O_DIRECTORY: 0o200000,
  O_NOFOLLOW: 0o400000,
  O_NOATIME: 0o1000000,
  O_CLOEXEC: 0o2000000,
  O_SYNC: 0o4010000,
  O_PATH: 0o10000000,
  O_TMPFILE: 0o20200000,
} as const;

export const PROT = { PROT_NONE: 0, PROT_READ: 1, PROT_WRITE: 2, PROT_EXEC: 4 } as const;
export const MAP = {
  MAP_SHARED: 0x01,
  MAP_PRIVATE: 0x02,
  MAP_SHARED_VALIDATE: 0x03,
  MAP_FIXED: 0x10,
  MAP_ANONYMOUS: 0x20,
  MAP_NORESERVE: 0x4000,
  MAP_POPULATE: 0x8000,
} as const;
export const MAP_FAILED = 0xffffffffffffffffn;
/** msync flags */
export const MS = { MS_ASYNC: 1, MS_INVALIDATE: 2, MS_SYNC: 4 } as const;
/** mount(2) / umount2(2) flags */
export const MOUNT = {
  MS_RDONLY: 1,
  MS_NOSUID: 2,
  MS_NODEV: 4,
  MS_NOEXEC: 8,
  MS_SYNCHRONOUS: 16,
  MS_REMOUNT: 32,
  MS_NOATIME: 1024,
  MS_BIND: 4096,
  MS_MOVE: 8192,
  MS_REC: 16384,
  MS_PRIVATE: 1 << 18,
  MNT_FORCE: 1,
  MNT_DETACH: 2,
  MNT_EXPIRE: 4,
  UMOUNT_NOFOLLOW: 8,
} as const;
export const SPLICE_F = { SPLICE_F_MOVE: 1, SPLICE_F_NONBLOCK: 2, SPLICE_F_MORE: 4, SPLICE_F_GIFT: 8 } as const;
export const FALLOC_FL = {
  FALLOC_FL_KEEP_SIZE: 0x01,
  FALLOC_FL_PUNCH_HOLE: 0x02,
  FALLOC_FL_COLLAPSE_RANGE: 0x08,
  FALLOC_FL_ZERO_RANGE: 0x10,
  FALLOC_FL_INSERT_RANGE: 0x20,
  FALLOC_FL_UNSHARE_RANGE: 0x40,
} as const;
export const SEEK = { SEEK_SET: 0, SEEK_CUR: 1, SEEK_END: 2, SEEK_DATA: 3, SEEK_HOLE: 4 } as const;
export const AT = {
  AT_FDCWD: -100,
  AT_SYMLINK_NOFOLLOW: 0x100,
  AT_REMOVEDIR: 0x200,
  AT_SYMLINK_FOLLOW: 0x400,
  AT_NO_AUTOMOUNT: 0x800,
  AT_EMPTY_PATH: 0x1000,
  AT_STATX_SYNC_AS_STAT: 0x0000,
  AT_STATX_FORCE_SYNC: 0x2000,
  AT_STATX_DONT_SYNC: 0x4000,
} as const;
export const STATX = {
  STATX_TYPE: 0x1,
  STATX_MODE: 0x2,
  STATX_NLINK: 0x4,
  STATX_UID: 0x8,
  STATX_GID: 0x10,
  STATX_ATIME: 0x20,
  STATX_MTIME: 0x40,
  STATX_CTIME: 0x80,
  STATX_INO: 0x100,
  STATX_SIZE: 0x200,
  STATX_BLOCKS: 0x400,
  STATX_BASIC_STATS: 0x7ff,
  STATX_BTIME: 0x800,
  STATX_MNT_ID: 0x1000,
  STATX_DIOALIGN: 0x2000,
  STATX_ALL: 0xfff,
} as const;
export const SYS = { pidfd_open: 434, pidfd_getfd: 438, gettid: 186, io_setup: 206, io_destroy: 207, io_getevents: 208, io_submit: 209 } as const;
/** per-call flags of preadv2/pwritev2 (include/uapi/linux/fs.h) */
export const RWF = { RWF_HIPRI: 1, RWF_DSYNC: 2, RWF_SYNC: 4, RWF_NOWAIT: 8, RWF_APPEND: 0x10 } as const;
/** FUSE device ioctls (SPEC §2) */
export const FUSE_DEV_IOC = { BACKING_OPEN: 0x4010e501, BACKING_CLOSE: 0x4004e502 } as const;

// ---------------------------------------------------------------------------------------
// errno names and SysError

// os.constants.errno has several names for one number (EAGAIN/EWOULDBLOCK, EOPNOTSUPP/ENOTSUP,
// EDEADLK/EDEADLOCK); the kernel's own name is preferred.
const PREFERRED = new Set(['EAGAIN', 'EOPNOTSUPP', 'EDEADLK']);
const ERRNO_NAMES = new Map<number, string>();
for (const [name, n] of Object.entries(os.constants.errno)) {
  if (!ERRNO_NAMES.has(n) || PREFERRED.has(name)) ERRNO_NAMES.set(n, name);
}
// Linux errnos that libuv's table leaves out.
const EXTRA: Record<number, string> = {
  3: 'ESRCH',
  15: 'ENOTBLK',
  44: 'ECHRNG',
  45: 'EL2NSYNC',
  46: 'EL3HLT',
  47: 'EL3RST',
  48: 'ELNRNG',
  49: 'EUNATCH',
  50: 'ENOCSI',
  51: 'EL2HLT',
  52: 'EBADE',
  53: 'EBADR',
  54: 'EXFULL',
  55: 'ENOANO',
  56: 'EBADRQC',
  57: 'EBADSLT',
  59: 'EBFONT',
  64: 'ENONET',
  65: 'ENOPKG',
  66: 'EREMOTE',
  68: 'EADV',
  69: 'ESRMNT',
  70: 'ECOMM',
  73: 'EDOTDOT',
  76: 'ENOTUNIQ',
  77: 'EBADFD',
  78: 'EREMCHG',
  79: 'ELIBACC',
  80: 'ELIBBAD',
  81: 'ELIBSCN',
  82: 'ELIBMAX',
  83: 'ELIBEXEC',
  85: 'ERESTART',
  86: 'ESTRPIPE',
  87: 'EUSERS',
  94: 'ESOCKTNOSUPPORT',
  96: 'EPFNOSUPPORT',
  108: 'ESHUTDOWN',
  109: 'ETOOMANYREFS',
  112: 'EHOSTDOWN',
  117: 'EUCLEAN',
  118: 'ENOTNAM',
  119: 'ENAVAIL',
  120: 'EISNAM',
  121: 'EREMOTEIO',
  123: 'ENOMEDIUM',
  124: 'EMEDIUMTYPE',
  126: 'ENOKEY',
  127: 'EKEYEXPIRED',
  128: 'EKEYREVOKED',
  129: 'EKEYREJECTED',
  132: 'ERFKILL',
  133: 'EHWPOISON',
  // kernel-internal codes that can surface in tracepoints (fuse_request_end error, ...)
  512: 'ERESTARTSYS',
  513: 'ERESTARTNOINTR',
  514: 'ERESTARTNOHAND',
  515: 'ENOIOCTLCMD',
  516: 'ERESTART_RESTARTBLOCK',
  517: 'EPROBE_DEFER',
  518: 'EOPENSTALE',
  519: 'ENOPARAM',
  521: 'EBADHANDLE',
  522: 'ENOTSYNC',
  523: 'EBADCOOKIE',
  524: 'ENOTSUPP',
  525: 'ETOOSMALL',
  526: 'ESERVERFAULT',
  527: 'EBADTYPE',
  528: 'EJUKEBOX',
  529: 'EIOCBQUEUED',
};
for (const [n, name] of Object.entries(EXTRA)) if (!ERRNO_NAMES.has(Number(n))) ERRNO_NAMES.set(Number(n), name);

/** Name of a Linux errno (sign ignored): 5 -> 'EIO'. Unknown numbers give 'E<n>'. */
export function errnoName(n: number): string {
  const a = Math.abs(n);
  return ERRNO_NAMES.get(a) ?? `E${a}`;
}

/** errno number of a name: 'EIO' -> 5 */
export function errnoNumber(name: string): number | undefined {
  const v = (os.constants.errno as Record<string, number>)[name];
  if (v !== undefined) return v;
  for (const [n, nm] of ERRNO_NAMES) if (nm === name) return n;
  return undefined;
}

const strerror_ = libc.func('const char *strerror(int errnum)');
export function strerror(n: number): string {
  return strerror_(Math.abs(n)) as string;
}

export class SysError extends Error {
  readonly code: string;
  readonly errno: number;
  readonly syscall: string;
  constructor(syscall: string, errno: number, args?: string) {
    const code = errnoName(errno);
    super(`${syscall}(${args ?? ''}) failed: ${code} (${strerror(errno)})`);
    this.name = 'SysError';
    this.code = code;
    this.errno = errno;
    this.syscall = syscall;
  }
}

// ---------------------------------------------------------------------------------------
// Binding machinery

type Fn = ReturnType<typeof libc.func>;
type Num = number | bigint;

/** Turn a C return value into a JS number (int64 may come back as bigint). */
function toNum(v: unknown): number {
  return typeof v === 'bigint' ? Number(v) : (v as number);
}

/** Failure test for the common "-1 and errno" convention. */
const minusOne = (r: unknown) => toNum(r) === -1;

function callSync<T>(fn: Fn, name: string, args: unknown[], fmt: () => string, failed = minusOne): T {
  const r = fn(...args);
  if (failed(r)) {
    const e = koffi.errno();
    throw new SysError(name, e, fmt());
  }
  return r as T;
}

function callAsync<T>(fn: Fn, name: string, args: unknown[], fmt: () => string, failed = minusOne): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    fn.async(...args, (err: unknown, r: unknown) => {
      // Must be the first thing: koffi installed the worker's errno for this callback only.
      const e = koffi.errno();
      if (err) return reject(err);
      if (failed(r)) return reject(new SysError(name, e, fmt()));
      resolve(r as T);
    });
  });
}

/** A `loff_t *` argument: null, or an 8-byte buffer holding the offset. */
function offPtr(off: Num | null | undefined): Buffer | null {
  if (off === null || off === undefined) return null;
  const b = Buffer.alloc(8);
  b.writeBigInt64LE(BigInt(off));
  return b;
}

function big(v: Num): bigint {
  return typeof v === 'bigint' ? v : BigInt(v);
}

/** number when exactly representable, bigint otherwise */
function normal(v: unknown): number | bigint {
  if (typeof v === 'bigint') return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  return v as number;
}

/** A C call prepared from JS arguments: the function, its arguments, and how to name it in an error. */
interface Call {
  fn: Fn;
  args: unknown[];
  fmt: () => string;
  /** how a failure shows in the return value (default: -1 and errno) */
  failed?: (r: unknown) => boolean;
}

/**
 * One definition of a call, both forms: `foo` (sync) and `fooAsync` (koffi's worker thread, see
 * the top of this file). `prep` turns the JS arguments into the C call; `done` turns the C return
 * value (with the prepared call, for buffers it filled) into the JS result.
 */
function both<A extends unknown[], P extends Call, R>(name: string, prep: (...a: A) => P, done: (r: unknown, p: P) => R) {
  return {
    sync: (...a: A): R => {
      const p = prep(...a);
      return done(callSync(p.fn, name, p.args, p.fmt, p.failed), p);
    },
    async: async (...a: A): Promise<R> => {
      const p = prep(...a);
      return done(await callAsync(p.fn, name, p.args, p.fmt, p.failed), p);
    },
  };
}
const nothing = (): void => undefined;

const f = {
  open: libc.func('int open(const char *path, int flags, uint32_t mode)'),
  close: libc.func('int close(int fd)'),
  pipe2: libc.func('int pipe2(void *fds, int flags)'),
  splice: libc.func('intptr_t splice(int fd_in, void *off_in, int fd_out, void *off_out, size_t len, uint32_t flags)'),
  tee: libc.func('intptr_t tee(int fd_in, int fd_out, size_t len, uint32_t flags)'),
  vmsplice: libc.func('intptr_t vmsplice(int fd, void *iov, size_t nr_segs, uint32_t flags)'),
  sendfile: libc.func('intptr_t sendfile(int out_fd, int in_fd, void *offset, size_t count)'),
  copy_file_range: libc.func('intptr_t copy_file_range(int fd_in, void *off_in, int fd_out, void *off_out, size_t len, uint32_t flags)'),
  fallocate: libc.func('int fallocate(int fd, int mode, int64_t offset, int64_t len)'),
  lseek: libc.func('int64_t lseek(int fd, int64_t offset, int whence)'),
  // ioctl(2) and syscall(2) are variadic in C. koffi cannot call variadic functions
  // asynchronously, so they are declared with fixed integer/pointer arguments: on the x86_64
  // SysV ABI integer arguments travel in the same registers either way (the callee only reads
  // %al to decide whether to spill vector registers, which is harmless), so this is exact.
  ioctl_ptr: libc.func('int ioctl(int fd, unsigned long request, void *arg)'),
  ioctl_int: libc.func('int ioctl(int fd, unsigned long request, uint64_t arg)'),
  syscall3: libc.func('long syscall(long number, long a, long b, long c)'),
  syscall5: libc.func('long syscall(long number, long a, long b, long c, long d, long e)'),
  preadv2: libc.func('intptr_t preadv2(int fd, void *iov, int iovcnt, int64_t offset, int flags)'),
  pwritev2: libc.func('intptr_t pwritev2(int fd, void *iov, int iovcnt, int64_t offset, int flags)'),
  statx: libc.func('int statx(int dirfd, const char *path, int flags, uint32_t mask, void *buf)'),
  pread: libc.func('intptr_t pread(int fd, void *buf, size_t count, int64_t offset)'),
  pwrite: libc.func('intptr_t pwrite(int fd, void *buf, size_t count, int64_t offset)'),
  fsync: libc.func('int fsync(int fd)'),
  fdatasync: libc.func('int fdatasync(int fd)'),
  mmap: libc.func('uintptr_t mmap(uintptr_t addr, size_t length, int prot, int flags, int fd, int64_t offset)'),
  munmap: libc.func('int munmap(uintptr_t addr, size_t length)'),
  msync: libc.func('int msync(uintptr_t addr, size_t length, int flags)'),
  // memcpy in both directions between JS buffers and raw addresses
  memcpyOut: libc.func('uintptr_t memcpy(void *dst, uintptr_t src, size_t n)'),
  memcpyIn: libc.func('uintptr_t memcpy(uintptr_t dst, void *src, size_t n)'),
  posix_memalign: libc.func('int posix_memalign(void *memptr, size_t alignment, size_t size)'),
  free: libc.func('void free(uintptr_t p)'),
  gettid: libc.func('int gettid()'),
  umount2: libc.func('int umount2(const char *target, int flags)'),
  // variadic in C; declared with a fixed integer argument as ioctl is (see ioctl_int)
  fcntl: libc.func('int fcntl(int fd, int cmd, long arg)'),
  mount: libc.func('int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const char *data)'),
};

// ---------------------------------------------------------------------------------------
// Plain fd calls

export const { sync: open, async: openAsync } = both(
  'open',
  (path: string, flags: number, mode = 0o644) => ({ fn: f.open, args: [path, flags, mode], fmt: () => `${JSON.stringify(path)}, 0o${flags.toString(8)}` }),
  (r) => toNum(r),
);
const fdCall = (fn: Fn) => (fd: number) => ({ fn, args: [fd], fmt: () => `fd=${fd}` });
export const { sync: close, async: closeAsync } = both('close', fdCall(f.close), nothing);
export const { sync: fsync, async: fsyncAsync } = both('fsync', fdCall(f.fsync), nothing);
export const { sync: fdatasync, async: fdatasyncAsync } = both('fdatasync', fdCall(f.fdatasync), nothing);

/** pipe2(2): returns [readFd, writeFd] */
export const { sync: pipe2, async: pipe2Async } = both(
  'pipe2',
  (flags = 0) => ({ fn: f.pipe2, args: [new Int32Array(2), flags], fmt: () => `flags=${flags}` }),
  (_r, p): [number, number] => {
    const fds = p.args[0] as Int32Array;
    return [fds[0]!, fds[1]!];
  },
);

/** splice(2): bytes moved */
export const { sync: splice, async: spliceAsync } = both(
  'splice',
  (fdIn: number, offIn: Num | null, fdOut: number, offOut: Num | null, len: number, flags = 0) => ({
    fn: f.splice,
    args: [fdIn, offPtr(offIn), fdOut, offPtr(offOut), len, flags],
    fmt: () => `fd_in=${fdIn}, off_in=${offIn ?? 'NULL'}, fd_out=${fdOut}, off_out=${offOut ?? 'NULL'}, len=${len}, flags=${flags}`,
  }),
  (r) => toNum(r),
);

export const { sync: tee, async: teeAsync } = both(
  'tee',
  (fdIn: number, fdOut: number, len: number, flags = 0) => ({
    fn: f.tee,
    args: [fdIn, fdOut, len, flags],
    fmt: () => `fd_in=${fdIn}, fd_out=${fdOut}, len=${len}`,
  }),
  (r) => toNum(r),
);

function iovec(buf: Buffer): Buffer {
  const iov = Buffer.alloc(16);
  iov.writeBigUInt64LE(koffi.address(buf), 0);
  iov.writeBigUInt64LE(BigInt(buf.length), 8);
  return iov;
}
/** vmsplice(2) of one buffer into a pipe. Do not use SPLICE_F_GIFT: the pages belong to V8. */
export const { sync: vmsplice, async: vmspliceAsync } = both(
  'vmsplice',
  // the buffer rides along in the prepared call, so it stays alive until the call returns
  (fd: number, buf: Buffer, flags = 0) => ({ fn: f.vmsplice, args: [fd, iovec(buf), 1, flags], fmt: () => `fd=${fd}, len=${buf.length}`, buf }),
  (r) => toNum(r),
);

/** sendfile(2). With an offset, the file position of inFd is unchanged. */
export const { sync: sendfile, async: sendfileAsync } = both(
  'sendfile',
  (outFd: number, inFd: number, offset: Num | null, count: number) => ({
    fn: f.sendfile,
    args: [outFd, inFd, offPtr(offset), count],
    fmt: () => `out_fd=${outFd}, in_fd=${inFd}, offset=${offset ?? 'NULL'}, count=${count}`,
  }),
  (r) => toNum(r),
);

export const { sync: copyFileRange, async: copyFileRangeAsync } = both(
  'copy_file_range',
  (fdIn: number, offIn: Num | null, fdOut: number, offOut: Num | null, len: number, flags = 0) => ({
    fn: f.copy_file_range,
    args: [fdIn, offPtr(offIn), fdOut, offPtr(offOut), len, flags],
    fmt: () => `fd_in=${fdIn}, off_in=${offIn ?? 'NULL'}, fd_out=${fdOut}, off_out=${offOut ?? 'NULL'}, len=${len}`,
  }),
  (r) => toNum(r),
);

export const { sync: fallocate, async: fallocateAsync } = both(
  'fallocate',
  (fd: number, mode: number, offset: Num, len: Num) => ({
    fn: f.fallocate,
    args: [fd, mode, big(offset), big(len)],
    fmt: () => `fd=${fd}, mode=${mode}, offset=${offset}, len=${len}`,
  }),
  nothing,
);

/** lseek(2): the new offset (number, or bigint beyond 2^53) */
export const { sync: lseek, async: lseekAsync } = both(
  'lseek',
  (fd: number, offset: Num, whence: number) => ({ fn: f.lseek, args: [fd, big(offset), whence], fmt: () => `fd=${fd}, offset=${offset}, whence=${whence}` }),
  (r) => normal(r),
);

/** ioctl(2). A Buffer is passed by pointer (and updated in place); a number/bigint by value. */
export const { sync: ioctl, async: ioctlAsync } = both(
  'ioctl',
  (fd: number, request: number, arg: Buffer | number | bigint = 0) => ({
    fn: Buffer.isBuffer(arg) ? f.ioctl_ptr : f.ioctl_int,
    args: [fd, request, Buffer.isBuffer(arg) ? arg : big(arg)],
    fmt: () => `fd=${fd}, request=0x${(request >>> 0).toString(16)}`,
  }),
  (r) => toNum(r),
);

// ---------------------------------------------------------------------------------------
// statx

export interface StatxTimestamp {
  sec: bigint;
  nsec: number;
}
export interface Statx {
  mask: number;
  blksize: number;
  attributes: bigint;
  nlink: number;
  uid: number;
  gid: number;
  mode: number;
  ino: bigint;
  size: bigint;
  blocks: bigint;
  attributesMask: bigint;
  atime: StatxTimestamp;
  btime: StatxTimestamp;
  ctime: StatxTimestamp;
  mtime: StatxTimestamp;
  rdevMajor: number;
  rdevMinor: number;
  devMajor: number;
  devMinor: number;
  mntId: bigint;
  dioMemAlign: number;
  dioOffsetAlign: number;
}

function parseStatx(b: Buffer): Statx {
  const ts = (o: number): StatxTimestamp => ({ sec: b.readBigInt64LE(o), nsec: b.readUInt32LE(o + 8) });
  return {
    mask: b.readUInt32LE(0),
    blksize: b.readUInt32LE(4),
    attributes: b.readBigUInt64LE(8),
    nlink: b.readUInt32LE(16),
    uid: b.readUInt32LE(20),
    gid: b.readUInt32LE(24),
    mode: b.readUInt16LE(28),
    ino: b.readBigUInt64LE(32),
    size: b.readBigUInt64LE(40),
    blocks: b.readBigUInt64LE(48),
    attributesMask: b.readBigUInt64LE(56),
    atime: ts(64),
    btime: ts(80),
    ctime: ts(96),
    mtime: ts(112),
    rdevMajor: b.readUInt32LE(128),
    rdevMinor: b.readUInt32LE(132),
    devMajor: b.readUInt32LE(136),
    devMinor: b.readUInt32LE(140),
    mntId: b.readBigUInt64LE(144),
    dioMemAlign: b.readUInt32LE(152),
    dioOffsetAlign: b.readUInt32LE(156),
  };
}

/** statx(2). dirfd AT.AT_FDCWD for paths; with AT_EMPTY_PATH and path '' it stats dirfd. */
export const { sync: statx, async: statxAsync } = both(
  'statx',
  (dirfd: number, path: string, flags: number = 0, mask: number = STATX.STATX_BASIC_STATS | STATX.STATX_BTIME) => {
    const buf = Buffer.alloc(256);
    return { fn: f.statx, args: [dirfd, path, flags, mask, buf], fmt: () => `dirfd=${dirfd}, ${JSON.stringify(path)}, flags=0x${flags.toString(16)}`, buf };
  },
  (_r, p) => parseStatx(p.buf),
);

// ---------------------------------------------------------------------------------------
// Raw and aligned buffers

/**
 * Memory from posix_memalign, for O_DIRECT. `buf` is a Buffer view over that memory (no copy);
 * it is invalid after free(). Free it exactly once (free() is idempotent here).
 */
export interface AlignedBuffer {
  readonly ptr: bigint;
  readonly size: number;
  readonly align: number;
  readonly buf: Buffer;
  free(): void;
}

export function alignedBuffer(size: number, align = 4096): AlignedBuffer {
  const out = Buffer.alloc(8);
  const rc = f.posix_memalign(out, align, size) as number;
  // posix_memalign returns the error number instead of setting errno
  if (rc !== 0) throw new SysError('posix_memalign', rc, `align=${align}, size=${size}`);
  const ptr = out.readBigUInt64LE(0);
  const buf = Buffer.from(koffi.view(ptr, size));
  buf.fill(0);
  let freed = false;
  return {
    ptr,
    size,
    align,
    buf,
    free() {
      if (!freed) {
        freed = true;
        f.free(ptr);
      }
    },
  };
}

type IoBuf = Buffer | AlignedBuffer;
function ioTarget(b: IoBuf, len?: number): { target: Buffer; len: number } {
  const target = Buffer.isBuffer(b) ? b : b.buf;
  const n = len ?? target.length;
  if (n > target.length) throw new RangeError(`length ${n} exceeds buffer of ${target.length} bytes`);
  return { target, len: n };
}

/** pread(2)/pwrite(2) with a Buffer or an AlignedBuffer (from its start): bytes moved. */
const ioCall = (fn: Fn) => (fd: number, buf: IoBuf, offset: Num, len?: number) => {
  const t = ioTarget(buf, len);
  return { fn, args: [fd, t.target, t.len, big(offset)], fmt: () => `fd=${fd}, count=${t.len}, offset=${offset}` };
};
export const { sync: pread, async: preadAsync } = both('pread', ioCall(f.pread), (r) => toNum(r));
export const { sync: pwrite, async: pwriteAsync } = both('pwrite', ioCall(f.pwrite), (r) => toNum(r));

// ---------------------------------------------------------------------------------------
// mmap

/**
 * A live mapping. read/write copy through memcpy; they never hand out a view of the mapping.
 *
 * Touching mapped memory of a file on a FUSE mount can page-fault into the FUSE server (or,
 * in passthrough, into the backing file). A fault cannot be interrupted by JS: the sync
 * read()/write()/msync() block the calling thread until the server answers. Use them only in
 * a child process (the suites run mmap cases in children the harness can kill) or where a hang
 * cannot happen; readAsync()/writeAsync()/msyncAsync() do the copy on a worker thread, so a hang
 * blocks a worker, not the event loop.
 */
export interface Mapping {
  readonly addr: bigint;
  readonly length: number;
  read(off: number, len: number): Buffer;
  write(off: number, data: Buffer): void;
  readAsync(off: number, len: number): Promise<Buffer>;
  writeAsync(off: number, data: Buffer): Promise<void>;
  msync(flags?: number, off?: number, len?: number): void;
  msyncAsync(flags?: number, off?: number, len?: number): Promise<void>;
  munmap(): void;
}

class MappingImpl implements Mapping {
  private unmapped = false;
  constructor(
    readonly addr: bigint,
    readonly length: number,
  ) {}
  private check(off: number, len: number) {
    if (this.unmapped) throw new Error('mapping already unmapped');
    if (off < 0 || len < 0 || off + len > this.length) throw new RangeError(`range ${off}+${len} outside mapping of ${this.length}`);
  }
  read(off: number, len: number): Buffer {
    this.check(off, len);
    const out = Buffer.alloc(len);
    if (len) f.memcpyOut(out, this.addr + BigInt(off), len);
    return out;
  }
  write(off: number, data: Buffer): void {
    this.check(off, data.length);
    if (data.length) f.memcpyIn(this.addr + BigInt(off), data, data.length);
  }
  async readAsync(off: number, len: number): Promise<Buffer> {
    this.check(off, len);
    const out = Buffer.alloc(len);
    if (len)
      await callAsync(
        f.memcpyOut,
        'memcpy',
        [out, this.addr + BigInt(off), len],
        () => '',
        () => false,
      );
    return out;
  }
  async writeAsync(off: number, data: Buffer): Promise<void> {
    this.check(off, data.length);
    if (data.length)
      await callAsync(
        f.memcpyIn,
        'memcpy',
        [this.addr + BigInt(off), data, data.length],
        () => '',
        () => false,
      );
  }
  msync(flags: number = MS.MS_SYNC, off = 0, len = this.length - off): void {
    this.check(off, len);
    callSync(f.msync, 'msync', [this.addr + BigInt(off), len, flags], () => `addr=0x${this.addr.toString(16)}, len=${len}, flags=${flags}`);
  }
  async msyncAsync(flags: number = MS.MS_SYNC, off = 0, len = this.length - off): Promise<void> {
    this.check(off, len);
    await callAsync(f.msync, 'msync', [this.addr + BigInt(off), len, flags], () => `addr=0x${this.addr.toString(16)}, len=${len}, flags=${flags}`);
  }
  munmap(): void {
    if (this.unmapped) return;
    callSync(f.munmap, 'munmap', [this.addr, this.length], () => `addr=0x${this.addr.toString(16)}, len=${this.length}`);
    this.unmapped = true;
  }
}

const mapFailed = (r: unknown) => BigInt(r as Num) === MAP_FAILED;

export const { sync: mmap, async: mmapAsync } = both(
  'mmap',
  (fd: number, length: number, prot: number, flags: number, offset: Num = 0) => ({
    fn: f.mmap,
    args: [0, length, prot, flags, fd, big(offset)],
    fmt: () => `len=${length}, prot=${prot}, flags=0x${flags.toString(16)}, fd=${fd}, offset=${offset}`,
    failed: mapFailed,
    length,
  }),
  (addr, p): Mapping => new MappingImpl(BigInt(addr as Num), p.length),
);

// ---------------------------------------------------------------------------------------
// Processes, mounts

export function gettid(): number {
  return f.gettid() as number;
}

/** pidfd_open(2) via syscall(2) */
export const { sync: pidfdOpen, async: pidfdOpenAsync } = both(
  'pidfd_open',
  (pid: number, flags = 0) => ({ fn: f.syscall3, args: [SYS.pidfd_open, pid, flags, 0], fmt: () => `pid=${pid}` }),
  (r) => toNum(r),
);
/** pidfd_getfd(2): a duplicate, in this process, of fd `targetFd` of the process behind pidfd */
export const { sync: pidfdGetfd, async: pidfdGetfdAsync } = both(
  'pidfd_getfd',
  (pidfd: number, targetFd: number) => ({ fn: f.syscall3, args: [SYS.pidfd_getfd, pidfd, targetFd, 0], fmt: () => `pidfd=${pidfd}, targetfd=${targetFd}` }),
  (r) => toNum(r),
);

export const { sync: umount2, async: umount2Async } = both(
  'umount2',
  (path: string, flags = 0) => ({ fn: f.umount2, args: [path, flags], fmt: () => `${JSON.stringify(path)}, flags=${flags}` }),
  nothing,
);
export const { sync: mount, async: mountAsync } = both(
  'mount',
  (source: string | null, target: string, type: string | null, flags: number = 0, data: string | null = null) => ({
    fn: f.mount,
    args: [source, target, type, flags, data],
    fmt: () => `${JSON.stringify(source)}, ${JSON.stringify(target)}, ${JSON.stringify(type)}, flags=0x${flags.toString(16)}`,
  }),
  nothing,
);

// ---------------------------------------------------------------------------------------
// preadv2/pwritev2 (per-call RWF_* flags) and Linux AIO (io_submit)

/** One iovec naming `len` bytes of an AlignedBuffer (its C address; a JS Buffer has none to give). */
function iovecOf(b: AlignedBuffer, len: number): Buffer {
  if (len > b.size) throw new RangeError(`length ${len} exceeds buffer of ${b.size} bytes`);
  const iov = Buffer.alloc(16);
  iov.writeBigUInt64LE(b.ptr, 0);
  iov.writeBigUInt64LE(BigInt(len), 8);
  return iov;
}
const rwv2 = (fn: Fn, name: string) => (fd: number, b: AlignedBuffer, len: number, offset: Num, flags: number) => ({
  fn,
  args: [fd, iovecOf(b, len), 1, big(offset), flags],
  fmt: () => `fd=${fd}, count=${len}, offset=${offset}, flags=0x${flags.toString(16)} (${name})`,
});
/** preadv2(2) of one AlignedBuffer with per-call RWF_* flags; offset -1 reads at the file position. */
export const { sync: preadv2, async: preadv2Async } = both('preadv2', rwv2(f.preadv2, 'preadv2'), (r) => toNum(r));
/** pwritev2(2) of one AlignedBuffer with per-call RWF_* flags (RWF_APPEND writes at the end). */
export const { sync: pwritev2, async: pwritev2Async } = both('pwritev2', rwv2(f.pwritev2, 'pwritev2'), (r) => toNum(r));

export interface AioOp {
  op: 'pread' | 'pwrite' | 'fsync' | 'fdsync';
  fd: number;
  buf?: AlignedBuffer;
  len?: number;
  offset?: number;
}

const IOCB_CMD = { pread: 0, pwrite: 1, fsync: 2, fdsync: 3 } as const;

/**
 * Submit ops with io_submit(2) on a fresh AIO context, wait for all of them (io_getevents on a
 * worker thread, so a server that never answers blocks a worker, not the event loop) and return
 * each op's result in order: bytes moved or 0, or -errno.
 */
export async function aioRun(ops: AioOp[]): Promise<number[]> {
  const n = ops.length;
  const mem = alignedBuffer(8 + n * 64 + n * 8 + n * 32, 64);
  try {
    const ctxAt = mem.ptr;
    const iocbAt = (i: number) => mem.ptr + BigInt(8 + i * 64);
    const listAt = mem.ptr + BigInt(8 + n * 64);
    const eventsAt = listAt + BigInt(n * 8);
    for (const [i, o] of ops.entries()) {
      const at = 8 + i * 64;
      mem.buf.writeBigUInt64LE(BigInt(i), at); // aio_data: the op's index
      mem.buf.writeUInt16LE(IOCB_CMD[o.op], at + 16); // aio_lio_opcode
      mem.buf.writeUInt32LE(o.fd, at + 20); // aio_fildes
      if (o.buf) mem.buf.writeBigUInt64LE(o.buf.ptr, at + 24); // aio_buf
      mem.buf.writeBigUInt64LE(BigInt(o.len ?? 0), at + 32); // aio_nbytes
      mem.buf.writeBigInt64LE(BigInt(o.offset ?? 0), at + 40); // aio_offset
      mem.buf.writeBigUInt64LE(iocbAt(i), 8 + n * 64 + i * 8);
    }
    await callAsync(f.syscall5, 'io_setup', [SYS.io_setup, n, ctxAt, 0, 0, 0], () => `nr_events=${n}`);
    const ctx = mem.buf.readBigUInt64LE(0);
    try {
      const submitted = toNum(await callAsync(f.syscall5, 'io_submit', [SYS.io_submit, ctx, n, listAt, 0, 0], () => `nr=${n}`));
      if (submitted !== n) throw new SysError('io_submit', 11, `nr=${n}: only ${submitted} submitted`);
      let got = 0;
      while (got < n) {
        const evAt = eventsAt + BigInt(got * 32);
        got += toNum(await callAsync(f.syscall5, 'io_getevents', [SYS.io_getevents, ctx, 1, n - got, evAt, 0], () => `nr=${n - got}`));
      }
      const res = new Array<number>(n).fill(0);
      for (let k = 0; k < n; k++) {
        const at = 8 + n * 64 + n * 8 + k * 32;
        res[Number(mem.buf.readBigUInt64LE(at))] = Number(mem.buf.readBigInt64LE(at + 16));
      }
      return res;
    } finally {
      await callAsync(f.syscall5, 'io_destroy', [SYS.io_destroy, ctx, 0, 0, 0, 0], () => 'ctx').catch(() => {});
    }
  } finally {
    mem.free();
  }
}

/** fcntl(2) commands used here */
export const F = { F_GETFL: 3, F_SETFL: 4 } as const;
/** fcntl(2) with an integer argument (F_GETFL, F_SETFL): its return value. */
export const { sync: fcntl, async: fcntlAsync } = both(
  'fcntl',
  (fd: number, cmd: number, arg: number = 0) => ({ fn: f.fcntl, args: [fd, cmd, arg], fmt: () => `fd=${fd}, cmd=${cmd}, arg=0x${arg.toString(16)}` }),
  (r) => toNum(r),
);
