// The FUSE structures fusecert reads out of the kernel's requests and the server's replies
// (include/uapi/linux/fuse.h, protocol 7.45), decoded from the bytes the reply tracer captures,
// and the flag names a failure message uses. Layouts are facts of the ABI; sizes are checked, so a
// short capture decodes to undefined rather than to garbage.

export const FOPEN = {
  DIRECT_IO: 1 << 0,
  KEEP_CACHE: 1 << 1,
  NONSEEKABLE: 1 << 2,
  CACHE_DIR: 1 << 3,
  STREAM: 1 << 4,
  NOFLUSH: 1 << 5,
  PARALLEL_DIRECT_WRITES: 1 << 6,
  PASSTHROUGH: 1 << 7,
} as const;

/** The flags the kernel allows beside FOPEN_PASSTHROUGH (iomode.c: FOPEN_PASSTHROUGH_MASK). */
export const FOPEN_PASSTHROUGH_MASK = FOPEN.PASSTHROUGH | FOPEN.DIRECT_IO | FOPEN.PARALLEL_DIRECT_WRITES | FOPEN.NOFLUSH;

/** INIT flags as one 64-bit number: flags | flags2 << 32. */
export const INIT_FLAGS: [string, number][] = [
  ['ASYNC_READ', 0],
  ['POSIX_LOCKS', 1],
  ['FILE_OPS', 2],
  ['ATOMIC_O_TRUNC', 3],
  ['EXPORT_SUPPORT', 4],
  ['BIG_WRITES', 5],
  ['DONT_MASK', 6],
  ['SPLICE_WRITE', 7],
  ['SPLICE_MOVE', 8],
  ['SPLICE_READ', 9],
  ['FLOCK_LOCKS', 10],
  ['HAS_IOCTL_DIR', 11],
  ['AUTO_INVAL_DATA', 12],
  ['DO_READDIRPLUS', 13],
  ['READDIRPLUS_AUTO', 14],
  ['ASYNC_DIO', 15],
  ['WRITEBACK_CACHE', 16],
  ['NO_OPEN_SUPPORT', 17],
  ['PARALLEL_DIROPS', 18],
  ['HANDLE_KILLPRIV', 19],
  ['POSIX_ACL', 20],
  ['ABORT_ERROR', 21],
  ['MAX_PAGES', 22],
  ['CACHE_SYMLINKS', 23],
  ['NO_OPENDIR_SUPPORT', 24],
  ['EXPLICIT_INVAL_DATA', 25],
  ['MAP_ALIGNMENT', 26],
  ['SUBMOUNTS', 27],
  ['HANDLE_KILLPRIV_V2', 28],
  ['SETXATTR_EXT', 29],
  ['INIT_EXT', 30],
  ['SECURITY_CTX', 32],
  ['HAS_INODE_DAX', 33],
  ['CREATE_SUPP_GROUP', 34],
  ['HAS_EXPIRE_ONLY', 35],
  ['DIRECT_IO_ALLOW_MMAP', 36],
  ['PASSTHROUGH', 37],
  ['NO_EXPORT_SUPPORT', 38],
  ['HAS_RESEND', 39],
  ['ALLOW_IDMAP', 40],
  ['OVER_IO_URING', 41],
  ['REQUEST_TIMEOUT', 42],
];
export const INIT_BIT = Object.fromEntries(INIT_FLAGS) as Record<string, number>;

/** 0x82 -> 'PASSTHROUGH|KEEP_CACHE'; unknown bits as hex. */
export function fopenNames(flags: number): string {
  const out: string[] = [];
  let rest = flags >>> 0;
  // PASSTHROUGH first: it is what the message is about
  for (const [n, v] of [['PASSTHROUGH', FOPEN.PASSTHROUGH] as const, ...Object.entries(FOPEN).filter(([k]) => k !== 'PASSTHROUGH')]) {
    if (rest & v) {
      out.push(n);
      rest &= ~v;
    }
  }
  if (rest) out.push(`0x${rest.toString(16)}`);
  return out.length ? out.join('|') : 'no flags';
}

export function initFlagNames(flags64: bigint, only?: string[]): string {
  const out: string[] = [];
  for (const [n, bit] of INIT_FLAGS) if ((flags64 >> BigInt(bit)) & 1n && (!only || only.includes(n))) out.push(n);
  return out.join('|') || 'none';
}

export interface OpenOut {
  fh: bigint;
  openFlags: number;
  backingId: number;
}
export interface OpenIn {
  /** the user's open(2) flags as the kernel passed them */
  flags: number;
  openFlags: number;
}
export interface ReleaseIn {
  fh: bigint;
  flags: number;
  releaseFlags: number;
}
export interface Attr {
  ino: bigint;
  size: number;
  blocks: number;
  atime: number;
  mtime: number;
  ctime: number;
  atimensec: number;
  mtimensec: number;
  ctimensec: number;
  mode: number;
  nlink: number;
}
export interface AttrOut {
  /** seconds + ns the kernel may cache the attributes */
  validMs: number;
  attr: Attr;
}
export interface EntryOut {
  nodeid: bigint;
  entryValidMs: number;
  attrValidMs: number;
  attr: Attr;
}
export interface InitOut {
  major: number;
  minor: number;
  flags64: bigint;
  maxWrite: number;
  maxStackDepth: number;
  /** the flags2 half is read by the kernel only when INIT_EXT is set */
  initExt: boolean;
}

const ok = (b: Buffer | undefined, n: number): b is Buffer => !!b && b.length >= n;

export function decodeOpenOut(b: Buffer | undefined): OpenOut | undefined {
  if (!ok(b, 16)) return undefined;
  return { fh: b.readBigUInt64LE(0), openFlags: b.readUInt32LE(8), backingId: b.readInt32LE(12) };
}
/** fuse_open_in (OPEN) or the first fields of fuse_create_in (CREATE, TMPFILE: flags, mode, umask, open_flags). */
export function decodeOpenIn(b: Buffer | undefined, create = false): OpenIn | undefined {
  if (!ok(b, create ? 16 : 8)) return undefined;
  return { flags: b.readUInt32LE(0), openFlags: b.readUInt32LE(create ? 12 : 4) };
}
export function decodeReleaseIn(b: Buffer | undefined): ReleaseIn | undefined {
  if (!ok(b, 16)) return undefined;
  return { fh: b.readBigUInt64LE(0), flags: b.readUInt32LE(8), releaseFlags: b.readUInt32LE(12) };
}
function attrAt(b: Buffer, o: number): Attr {
  return {
    ino: b.readBigUInt64LE(o),
    size: Number(b.readBigUInt64LE(o + 8)),
    blocks: Number(b.readBigUInt64LE(o + 16)),
    atime: Number(b.readBigUInt64LE(o + 24)),
    mtime: Number(b.readBigUInt64LE(o + 32)),
    ctime: Number(b.readBigUInt64LE(o + 40)),
    atimensec: b.readUInt32LE(o + 48),
    mtimensec: b.readUInt32LE(o + 52),
    ctimensec: b.readUInt32LE(o + 56),
    mode: b.readUInt32LE(o + 60),
    nlink: b.readUInt32LE(o + 64),
  };
}
const ms = (sec: bigint, nsec: number) => Number(sec) * 1000 + nsec / 1e6;
export function decodeAttrOut(b: Buffer | undefined): AttrOut | undefined {
  if (!ok(b, 16 + 68)) return undefined;
  return { validMs: ms(b.readBigUInt64LE(0), b.readUInt32LE(8)), attr: attrAt(b, 16) };
}
export function decodeEntryOut(b: Buffer | undefined): EntryOut | undefined {
  if (!ok(b, 40 + 68)) return undefined;
  return {
    nodeid: b.readBigUInt64LE(0),
    entryValidMs: ms(b.readBigUInt64LE(16), b.readUInt32LE(32)),
    attrValidMs: ms(b.readBigUInt64LE(24), b.readUInt32LE(36)),
    attr: attrAt(b, 40),
  };
}
export function decodeInitOut(b: Buffer | undefined): InitOut | undefined {
  if (!ok(b, 24)) return undefined;
  const flags = b.readUInt32LE(12);
  const initExt = ((flags >>> 30) & 1) === 1;
  const flags2 = initExt && b.length >= 36 ? b.readUInt32LE(32) : 0;
  return {
    major: b.readUInt32LE(0),
    minor: b.readUInt32LE(4),
    flags64: BigInt(flags) | (BigInt(flags2) << 32n),
    maxWrite: b.readUInt32LE(20),
    maxStackDepth: b.length >= 40 ? b.readUInt32LE(36) : 0,
    initExt,
  };
}

/** FATTR_* bits of fuse_setattr_in.valid that a diagnosis reads. */
export const FATTR = { MODE: 1 << 0, SIZE: 1 << 3 } as const;
export interface SetattrIn {
  valid: number;
  size: number;
  mode: number;
}
/** fuse_setattr_in: valid @0, fh @8, size @16, ..., mode @68 (88 bytes; the capture keeps 64: mode only when longer). */
export function decodeSetattrIn(b: Buffer | undefined): SetattrIn | undefined {
  if (!ok(b, 24)) return undefined;
  return { valid: b.readUInt32LE(0), size: Number(b.readBigUInt64LE(16)), mode: b.length >= 72 ? b.readUInt32LE(68) : -1 };
}
export interface ReadIn {
  fh: bigint;
  offset: number;
  size: number;
}
/** fuse_read_in: fh @0, offset @8, size @16. */
export function decodeReadIn(b: Buffer | undefined): ReadIn | undefined {
  if (!ok(b, 20)) return undefined;
  return { fh: b.readBigUInt64LE(0), offset: Number(b.readBigUInt64LE(8)), size: b.readUInt32LE(16) };
}
