import { parseKey } from './key.ts';
export { formatKey, parseKey, keyOf, covers, selects, type ClauseKey } from './key.ts';
// The clause catalogue: the one place ids, levels and titles live. SPEC.md §6 states the
// contract; RW, SPL and MAP are described there as lists, and the ids below number them.
export type Level = 'MUST' | 'SHOULD' | 'INFO';
export type Family = 'PLT' | 'NEG' | 'BKG' | 'IOM' | 'RW' | 'SPL' | 'MAP' | 'ATT' | 'FSX' | 'LIF' | 'PRF';

export interface Clause {
  id: string;
  family: Family;
  level: Level;
  title: string;
  /** What the check observes: bytes, errno, attributes, requests (fuse tracepoints), ledger (ioctl tracepoints). */
  observes: string;
}

/** `alone`: the family's suite runs after the others, with nothing beside it (it measures time). */
export const FAMILIES: Record<Family, { suite: string; title: string; alone?: boolean }> = {
  PLT: { suite: 'platform', title: 'the platform honours the contract' },
  NEG: { suite: 'negotiation', title: 'negotiation' },
  BKG: { suite: 'backing', title: 'backing-file lifecycle' },
  IOM: { suite: 'iomodes', title: 'io modes' },
  RW: { suite: 'readwrite', title: 'read/write correctness' },
  SPL: { suite: 'splice', title: 'splice and sendfile' },
  MAP: { suite: 'mmap', title: 'mmap' },
  ATT: { suite: 'attributes', title: 'attribute freshness' },
  FSX: { suite: 'fsx', title: 'model-checked random operations' },
  LIF: { suite: 'lifecycle', title: 'lifecycle' },
  PRF: { suite: 'performance', title: 'performance', alone: true },
};

const c = (id: string, level: Level, title: string, observes: string): Clause => ({
  id,
  family: id.split('-')[0] as Family,
  level,
  title,
  observes,
});

export const CLAUSES: Clause[] = [
  c(
    'PLT-001',
    'INFO',
    'kernel offers FUSE_PASSTHROUGH in INIT and grants it only with max_stack_depth 1 or 2',
    'INIT flags seen by ptfs --init-report; borrowed-fd probe with max_stack_depth 1, 0 and 3',
  ),
  c(
    'PLT-002',
    'INFO',
    "BACKING_OPEN/CLOSE error codes and ids are those of SPEC §2 and the kernel's rules",
    'errno or id of each ioctl case (ptfs --ioctl-selfcheck: file kinds, cyclic ids, a cloned fd, no CAP_SYS_ADMIN); borrowed-fd ioctls, also after an abort',
  ),
  c('PLT-003', 'INFO', 'passthrough together with WRITEBACK_CACHE is refused', 'borrowed-fd probe: EPERM'),
  c('PLT-004', 'INFO', 'each io-mode conflict of SPEC §4 gives EIO and leaves existing fds working', 'errno of open, bytes on existing fds'),
  c('PLT-005', 'INFO', 'KEEP_CACHE with passthrough gives EIO', 'errno of open'),
  c('PLT-006', 'INFO', 'ELOOP for a backing file on a stacked filesystem', 'ledger: BACKING_OPEN -> ELOOP'),
  c('PLT-007', 'INFO', 'stat after a passthrough write sends GETATTR', 'requests: FUSE_GETATTR in the window'),
  c('PLT-008', 'INFO', 'open replies the kernel refuses with passthrough give EIO', 'errno of open per reply shape (ptfs --probe-open-replies)'),
  c('PLT-009', 'INFO', 'what the kernel accepts or ignores beside passthrough', 'requests: FUSE_READ/WRITE/FLUSH/READDIR per window; I/O after BACKING_CLOSE'),
  c('PLT-010', 'INFO', 'O_DIRECT on a backing filesystem without it: EINVAL for I/O, EIO for the open', 'errno of read, write and open (ramfs source)'),
  c('PLT-011', 'INFO', 'shared mmap of a DIRECT_IO file: ENODEV without DIRECT_IO_ALLOW_MMAP, cached mode with it', 'errno of mmap and open'),

  c('NEG-001', 'MUST', 'the server mounts, answers INIT and serves a lookup within the mount timeout', 'mountinfo, stat of the root and of a file'),
  c('NEG-002', 'MUST', 'a server that claims passthrough gets it enabled', 'borrowed-fd probe and the ledger'),
  c('NEG-003', 'MUST', 'no BACKING_OPEN fails with EPERM/ENOTTY for lack of negotiation', 'ledger: failed opens'),
  c('NEG-004', 'MUST', 'reads of a passthrough-opened regular file send no FUSE_READ', 'requests: FUSE_READ count'),
  c('NEG-005', 'MUST', 'writes to a passthrough-opened regular file send no FUSE_WRITE', 'requests: FUSE_WRITE count'),
  c('NEG-006', 'INFO', 'negotiated stack depth (1 or 2)', 'borrowed-fd BACKING_OPEN of an overlayfs file'),
  c('NEG-007', 'MUST', 'the transport the server claims serves its requests', 'reply evidence: the transport of each request at its end (FR_URING)'),

  c('BKG-001', 'MUST', 'every passthrough open is served by a live backing id (no EIO on open/create)', 'errno of open, ledger'),
  c('BKG-002', 'MUST', 'concurrent opens of one inode share one backing object', 'errno, bytes'),
  c('BKG-003', 'SHOULD', 'no leak: every backing id is closed after the last close, and space is freed', 'ledger balance, statfs of the backing tmpfs'),
  c('BKG-004', 'MUST', 'no BACKING_CLOSE fails (no double close, no invalid id)', 'ledger: failed closes'),
  c('BKG-005', 'MUST', 'files created with O_CREAT are in passthrough too', 'requests: no FUSE_WRITE/FUSE_READ, ledger'),
  c('BKG-006', 'MUST', 'a refused backing file (ELOOP) still opens and reads right', 'bytes, errno'),
  c('BKG-007', 'MUST', 'a refused backing file does not break later opens of files in passthrough', 'errno of open'),
  c('BKG-008', 'MUST', 'an open/close storm gives no EIO and no failed backing ioctl', 'errno, ledger: failed ioctls'),
  c('BKG-009', 'MUST', 'unlink while open: I/O on the open fd continues', 'bytes'),
  c('BKG-010', 'SHOULD', 'one live backing id per inode at a time', 'ledger: live ids per inode'),
  c('BKG-011', 'SHOULD', 'an open/close storm leaves no backing id live after the last close', 'ledger balance'),
  c('BKG-012', 'SHOULD', 'unlink while open: the space is freed after the last close', 'statfs of the backing tmpfs, ledger'),
  c('BKG-013', 'MUST', 'files created with O_TMPFILE are in passthrough too', 'requests: no FUSE_WRITE/FUSE_READ, ledger'),
  c('BKG-014', 'SHOULD', 'an open the backing filesystem refuses fails with its errno, not EIO', 'errno of open on a read-only source'),

  c('IOM-001', 'MUST', 'every pair of concurrent open flags on one file succeeds', 'errno, bytes'),
  c('IOM-002', 'MUST', 'O_DIRECT I/O (aligned) is correct', 'bytes'),
  c('IOM-003', 'MUST', 'shared mmap while other fds are open works and stays coherent', 'bytes'),
  c('IOM-004', 'MUST', 'executing a binary stored in the mount works', 'exit status and output'),
  c('IOM-005', 'MUST', 'directory opens and readdir are unaffected by files in passthrough', 'directory listing'),
  c('IOM-006', 'MUST', 'an O_DIRECT fd opened before a passthrough open can still be mapped', 'errno of mmap, bytes'),

  c('RW-001', 'MUST', 'sequential read of a known tree equals the model', 'bytes'),
  c('RW-002', 'MUST', 'pwrite/pread at unaligned offsets crossing page and max_write boundaries', 'bytes'),
  c('RW-003', 'MUST', 'short reads at EOF and reads past EOF', 'byte counts'),
  c('RW-004', 'MUST', 'holes read as zeros', 'bytes'),
  c('RW-005', 'MUST', 'readv/writev', 'bytes'),
  c('RW-006', 'MUST', '4 MiB reads and writes', 'bytes'),
  c('RW-007', 'MUST', 'concurrent O_APPEND writers never overlap', 'bytes, size'),
  c('RW-008', 'MUST', 'O_TRUNC empties the file', 'size, bytes'),
  c('RW-009', 'MUST', 'ftruncate shrink and extend', 'size, bytes'),
  c('RW-010', 'MUST', 'fallocate and SEEK_DATA/SEEK_HOLE', 'bytes, offsets'),
  c('RW-011', 'MUST', 'copy_file_range inside the mount', 'bytes'),
  c('RW-012', 'MUST', 'fsync and fdatasync succeed', 'errno'),
  c('RW-013', 'MUST', 'writes through the mount are in the backing file at once, and the reverse', 'bytes of the backing file'),
  c('RW-014', 'MUST', 'fsync and fdatasync reach the server, and the server syncs its file', "requests: FUSE_FSYNC; syscalls of the server's threads"),
  c('RW-015', 'MUST', 'Linux AIO (io_submit) reads, writes and fdsync agree with the model', 'bytes; requests: FUSE_READ/FUSE_WRITE in passthrough'),
  c(
    'RW-016',
    'MUST',
    'preadv2/pwritev2 per-call flags: RWF_APPEND appends at the end; RWF_DSYNC, RWF_SYNC, RWF_HIPRI, RWF_NOWAIT keep the bytes right',
    'bytes, size; requests: FUSE_READ/FUSE_WRITE in passthrough',
  ),

  c('SPL-001', 'MUST', 'splice file->pipe at offsets', 'bytes'),
  c('SPL-002', 'MUST', 'splice pipe->file at offsets', 'bytes'),
  c('SPL-003', 'MUST', 'sendfile file->file', 'bytes'),
  c('SPL-004', 'MUST', 'sendfile file->socket', 'bytes'),
  c('SPL-005', 'MUST', 'splice past EOF returns 0', 'byte counts'),
  c('SPL-006', 'MUST', 'splice into an O_APPEND file behaves as on a local filesystem (6.18: EINVAL, file unchanged)', 'errno, bytes, size'),
  c('SPL-007', 'MUST', 'splice and sendfile from a passthrough-opened file send no FUSE_READ', 'requests: FUSE_READ count, bytes'),
  c('SPL-008', 'MUST', 'splice into a passthrough-opened file sends no FUSE_WRITE', 'requests: FUSE_WRITE count, bytes'),

  c('MAP-001', 'MUST', 'MAP_SHARED read equals the file', 'bytes'),
  c('MAP-002', 'MUST', 'MAP_SHARED write + msync is seen by read() on another fd and in the backing file', 'bytes'),
  c('MAP-003', 'MUST', 'MAP_PRIVATE writes stay private', 'bytes'),
  c('MAP-004', 'MUST', 'mmap and pwrite on the same file stay coherent', 'bytes'),

  c('ATT-001', 'MUST', 'size after an extending write is right at once (fstat same fd, other fd, stat by path)', 'attributes'),
  c('ATT-002', 'MUST', 'mtime and ctime advance after a write', 'attributes'),
  c('ATT-003', 'MUST', 'st_blocks grows after writing data', 'attributes'),
  c('ATT-004', 'MUST', 'size after truncate (shrink and extend, by fd and by path)', 'attributes'),
  c('ATT-005', 'MUST', 'size after concurrent O_APPEND writes', 'attributes'),
  c('ATT-006', 'SHOULD', 'mtime after a MAP_SHARED write + msync(MS_SYNC)', 'attributes'),
  c('ATT-007', 'MUST', 'stat through the mount equals the backing file stat (mirror servers)', 'attributes'),
  c('ATT-008', 'MUST', 'a change made to the backing file is visible within the declared attribute timeout', 'attributes'),
  c(
    'ATT-009',
    'MUST',
    'a write by a user without CAP_FSETID clears set-user-ID and set-group-ID',
    'mode through the mount and of the backing file after an unprivileged append',
  ),
  c(
    'ATT-010',
    'MUST',
    "atime after a read is the backing file's (stat after a passthrough read asks the server)",
    'attributes: atime by fstat and stat against the backing file',
  ),

  c('FSX-001', 'MUST', 'seeded random operation sequences on one file agree with a model', 'bytes, size'),
  c('FSX-002', 'MUST', 'random sequences over two fds and a shared mapping agree with a model', 'bytes, size'),

  c('LIF-001', 'MUST', 'clean unmount: the server exits 0, nothing is left', 'exit status, mountinfo, processes'),
  c('LIF-002', 'MUST', 'killing the server gives ENOTCONN and the mount can be removed', 'errno, mountinfo'),
  c('LIF-003', 'INFO', 'what open passthrough fds do after the connection is aborted', 'errno, bytes'),
  c('LIF-004', 'MUST', 'no fd leak in the server after thousands of operations', '/proc/PID/fd count'),
  c('LIF-005', 'SHOULD', "the space of a file deleted while open comes back once a killed server's mount is removed", 'statfs of the backing tmpfs'),

  c('PRF-001', 'SHOULD', 'passthrough sequential read throughput >= 0.8 x native', 'throughput ratio'),
  c('PRF-002', 'SHOULD', 'passthrough sequential write throughput >= 0.8 x native', 'throughput ratio'),
  c('PRF-003', 'INFO', 'FUSE requests per MiB of passthrough I/O', 'requests'),
  c('PRF-004', 'INFO', 'open+close latency', 'time per cycle'),
];

const byId = new Map(CLAUSES.map((cl) => [cl.id, cl]));

export function clauseById(id: string): Clause {
  const cl = byId.get(parseKey(id).id);
  if (!cl) throw new Error(`unknown clause id ${id}: see \`fusecert clauses\` for the catalogue`);
  return cl;
}

export function isClauseId(id: string): boolean {
  return byId.has(parseKey(id).id);
}
