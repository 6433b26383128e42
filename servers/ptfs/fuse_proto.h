/*
 * fuse_proto.h - the subset of the FUSE kernel protocol (7.40) that ptfs speaks.
 *
 * Written for ptfs from the ABI facts (SPEC.md sections 1-5a): the distro header
 * stops at 7.38 and knows nothing of passthrough, so ptfs carries its own
 * definitions.  Layouts are fixed by the kernel ABI; every struct is asserted
 * for size at the bottom so a typo fails the build instead of the protocol.
 */
#ifndef PTFS_FUSE_PROTO_H
#define PTFS_FUSE_PROTO_H

#include <stdint.h>
#include <sys/ioctl.h>

#define PT_KERNEL_VERSION 7
#define PT_KERNEL_MINOR 40
#define PT_MIN_READ_BUFFER 8192
#define PT_ROOT_ID 1ULL

/* INIT flags (low 32 bits in flags, high 32 bits in flags2). */
#define PT_INIT_ASYNC_READ (1ULL << 0)
#define PT_INIT_POSIX_LOCKS (1ULL << 1)
#define PT_INIT_ATOMIC_O_TRUNC (1ULL << 3)
#define PT_INIT_BIG_WRITES (1ULL << 5)
#define PT_INIT_DONT_MASK (1ULL << 6)
#define PT_INIT_AUTO_INVAL_DATA (1ULL << 12)
#define PT_INIT_DO_READDIRPLUS (1ULL << 13)
#define PT_INIT_READDIRPLUS_AUTO (1ULL << 14)
#define PT_INIT_ASYNC_DIO (1ULL << 15)
#define PT_INIT_WRITEBACK_CACHE (1ULL << 16)
#define PT_INIT_PARALLEL_DIROPS (1ULL << 18)
#define PT_INIT_MAX_PAGES (1ULL << 22)
#define PT_INIT_HANDLE_KILLPRIV_V2 (1ULL << 28)
#define PT_INIT_INIT_EXT (1ULL << 30)
#define PT_INIT_DIRECT_IO_ALLOW_MMAP (1ULL << 36) /* flags2 bit 4 (7.39, Linux 6.6) */
#define PT_INIT_PASSTHROUGH (1ULL << 37)
#define PT_INIT_OVER_IO_URING (1ULL << 41) /* flags2 bit 9 (7.42, Linux 6.14) */

/* open reply flags */
#define PT_FOPEN_DIRECT_IO (1U << 0)
#define PT_FOPEN_KEEP_CACHE (1U << 1)
#define PT_FOPEN_NONSEEKABLE (1U << 2)
#define PT_FOPEN_CACHE_DIR (1U << 3)
#define PT_FOPEN_STREAM (1U << 4)
#define PT_FOPEN_NOFLUSH (1U << 5)
#define PT_FOPEN_PARALLEL_DIRECT_WRITES (1U << 6)
/* SPEC.md 3 says 1<<8; the kernel ABI (include/uapi/linux/fuse.h, 7.40) uses bit 7,
 * and measurement on 6.18 agrees: with bit 8 the kernel silently serves the open cached. */
#define PT_FOPEN_PASSTHROUGH (1U << 7)

/* fuse_write_in.write_flags */
#define PT_WRITE_KILL_SUIDGID (1U << 2)

/* SETATTR valid bits */
#define PT_FATTR_MODE (1U << 0)
#define PT_FATTR_UID (1U << 1)
#define PT_FATTR_GID (1U << 2)
#define PT_FATTR_SIZE (1U << 3)
#define PT_FATTR_ATIME (1U << 4)
#define PT_FATTR_MTIME (1U << 5)
#define PT_FATTR_FH (1U << 6)
#define PT_FATTR_ATIME_NOW (1U << 7)
#define PT_FATTR_MTIME_NOW (1U << 8)
#define PT_FATTR_LOCKOWNER (1U << 9)
#define PT_FATTR_CTIME (1U << 10)
#define PT_FATTR_KILL_SUIDGID (1U << 11)

#define PT_GETATTR_FH (1U << 0)

/* Opcodes */
enum pt_opcode {
	PT_LOOKUP = 1,
	PT_FORGET = 2,
	PT_GETATTR = 3,
	PT_SETATTR = 4,
	PT_READLINK = 5,
	PT_SYMLINK = 6,
	PT_MKNOD = 8,
	PT_MKDIR = 9,
	PT_UNLINK = 10,
	PT_RMDIR = 11,
	PT_RENAME = 12,
	PT_LINK = 13,
	PT_OPEN = 14,
	PT_READ = 15,
	PT_WRITE = 16,
	PT_STATFS = 17,
	PT_RELEASE = 18,
	PT_FSYNC = 20,
	PT_SETXATTR = 21,
	PT_GETXATTR = 22,
	PT_LISTXATTR = 23,
	PT_REMOVEXATTR = 24,
	PT_FLUSH = 25,
	PT_INIT = 26,
	PT_OPENDIR = 27,
	PT_READDIR = 28,
	PT_RELEASEDIR = 29,
	PT_FSYNCDIR = 30,
	PT_GETLK = 31,
	PT_SETLK = 32,
	PT_SETLKW = 33,
	PT_ACCESS = 34,
	PT_CREATE = 35,
	PT_INTERRUPT = 36,
	PT_BMAP = 37,
	PT_DESTROY = 38,
	PT_IOCTL = 39,
	PT_POLL = 40,
	PT_NOTIFY_REPLY = 41,
	PT_BATCH_FORGET = 42,
	PT_FALLOCATE = 43,
	PT_READDIRPLUS = 44,
	PT_RENAME2 = 45,
	PT_LSEEK = 46,
	PT_COPY_FILE_RANGE = 47,
	PT_SETUPMAPPING = 48,
	PT_REMOVEMAPPING = 49,
	PT_SYNCFS = 50,
	PT_TMPFILE = 51,
	PT_STATX = 52,
};

struct pt_attr {
	uint64_t ino;
	uint64_t size;
	uint64_t blocks;
	uint64_t atime;
	uint64_t mtime;
	uint64_t ctime;
	uint32_t atimensec;
	uint32_t mtimensec;
	uint32_t ctimensec;
	uint32_t mode;
	uint32_t nlink;
	uint32_t uid;
	uint32_t gid;
	uint32_t rdev;
	uint32_t blksize;
	uint32_t flags;
};

struct pt_in_header {
	uint32_t len;
	uint32_t opcode;
	uint64_t unique;
	uint64_t nodeid;
	uint32_t uid;
	uint32_t gid;
	uint32_t pid;
	uint16_t total_extlen;
	uint16_t padding;
};

struct pt_out_header {
	uint32_t len;
	int32_t error;
	uint64_t unique;
};

struct pt_init_in {
	uint32_t major;
	uint32_t minor;
	uint32_t max_readahead;
	uint32_t flags;
	uint32_t flags2;
	uint32_t unused[11];
};

struct pt_init_out {
	uint32_t major;
	uint32_t minor;
	uint32_t max_readahead;
	uint32_t flags;
	uint16_t max_background;
	uint16_t congestion_threshold;
	uint32_t max_write;
	uint32_t time_gran;
	uint16_t max_pages;
	uint16_t map_alignment;
	uint32_t flags2;
	uint32_t max_stack_depth;
	uint32_t unused[6];
};

struct pt_entry_out {
	uint64_t nodeid;
	uint64_t generation;
	uint64_t entry_valid;
	uint64_t attr_valid;
	uint32_t entry_valid_nsec;
	uint32_t attr_valid_nsec;
	struct pt_attr attr;
};

struct pt_forget_in {
	uint64_t nlookup;
};

struct pt_forget_one {
	uint64_t nodeid;
	uint64_t nlookup;
};

struct pt_batch_forget_in {
	uint32_t count;
	uint32_t dummy;
};

struct pt_getattr_in {
	uint32_t getattr_flags;
	uint32_t dummy;
	uint64_t fh;
};

struct pt_attr_out {
	uint64_t attr_valid;
	uint32_t attr_valid_nsec;
	uint32_t dummy;
	struct pt_attr attr;
};

struct pt_setattr_in {
	uint32_t valid;
	uint32_t padding;
	uint64_t fh;
	uint64_t size;
	uint64_t lock_owner;
	uint64_t atime;
	uint64_t mtime;
	uint64_t ctime;
	uint32_t atimensec;
	uint32_t mtimensec;
	uint32_t ctimensec;
	uint32_t mode;
	uint32_t unused4;
	uint32_t uid;
	uint32_t gid;
	uint32_t unused5;
};

struct pt_mknod_in {
	uint32_t mode;
	uint32_t rdev;
	uint32_t umask;
	uint32_t padding;
};

struct pt_mkdir_in {
	uint32_t mode;
	uint32_t umask;
};

struct pt_rename_in {
	uint64_t newdir;
};

struct pt_rename2_in {
	uint64_t newdir;
	uint32_t flags;
	uint32_t padding;
};

struct pt_link_in {
	uint64_t oldnodeid;
};

struct pt_open_in {
	uint32_t flags;
	uint32_t open_flags;
};

struct pt_create_in {
	uint32_t flags;
	uint32_t mode;
	uint32_t umask;
	uint32_t open_flags;
};

struct pt_open_out {
	uint64_t fh;
	uint32_t open_flags;
	int32_t backing_id;
};

struct pt_release_in {
	uint64_t fh;
	uint32_t flags;
	uint32_t release_flags;
	uint64_t lock_owner;
};

struct pt_flush_in {
	uint64_t fh;
	uint32_t unused;
	uint32_t padding;
	uint64_t lock_owner;
};

struct pt_read_in {
	uint64_t fh;
	uint64_t offset;
	uint32_t size;
	uint32_t read_flags;
	uint64_t lock_owner;
	uint32_t flags;
	uint32_t padding;
};

struct pt_write_in {
	uint64_t fh;
	uint64_t offset;
	uint32_t size;
	uint32_t write_flags;
	uint64_t lock_owner;
	uint32_t flags;
	uint32_t padding;
};

struct pt_write_out {
	uint32_t size;
	uint32_t padding;
};

struct pt_kstatfs {
	uint64_t blocks;
	uint64_t bfree;
	uint64_t bavail;
	uint64_t files;
	uint64_t ffree;
	uint32_t bsize;
	uint32_t namelen;
	uint32_t frsize;
	uint32_t padding;
	uint32_t spare[6];
};

struct pt_statfs_out {
	struct pt_kstatfs st;
};

struct pt_fsync_in {
	uint64_t fh;
	uint32_t fsync_flags;
	uint32_t padding;
};

/* Without FUSE_SETXATTR_EXT the kernel sends only the first two fields. */
struct pt_setxattr_in {
	uint32_t size;
	uint32_t flags;
};

struct pt_getxattr_in {
	uint32_t size;
	uint32_t padding;
};

struct pt_getxattr_out {
	uint32_t size;
	uint32_t padding;
};

struct pt_fallocate_in {
	uint64_t fh;
	uint64_t offset;
	uint64_t length;
	uint32_t mode;
	uint32_t padding;
};

struct pt_lseek_in {
	uint64_t fh;
	uint64_t offset;
	uint32_t whence;
	uint32_t padding;
};

struct pt_lseek_out {
	uint64_t offset;
};

struct pt_copy_file_range_in {
	uint64_t fh_in;
	uint64_t off_in;
	uint64_t nodeid_out;
	uint64_t fh_out;
	uint64_t off_out;
	uint64_t len;
	uint64_t flags;
};

struct pt_dirent {
	uint64_t ino;
	uint64_t off;
	uint32_t namelen;
	uint32_t type;
	char name[];
};

struct pt_direntplus {
	struct pt_entry_out entry_out;
	struct pt_dirent dirent;
};

#define PT_DIRENT_ALIGN(x) (((x) + sizeof(uint64_t) - 1) & ~(sizeof(uint64_t) - 1))
#define PT_NAME_OFFSET offsetof(struct pt_dirent, name)
#define PT_NAME_OFFSET_PLUS offsetof(struct pt_direntplus, dirent.name)

/* Backing-file ioctls on the /dev/fuse fd (magic 229). */
struct pt_backing_map {
	int32_t fd;
	uint32_t flags;
	uint64_t padding;
};

#define PT_DEV_IOC_MAGIC 229
#define PT_DEV_IOC_CLONE _IOR(PT_DEV_IOC_MAGIC, 0, uint32_t)
#define PT_DEV_IOC_BACKING_OPEN _IOW(PT_DEV_IOC_MAGIC, 1, struct pt_backing_map)
#define PT_DEV_IOC_BACKING_CLOSE _IOW(PT_DEV_IOC_MAGIC, 2, uint32_t)

/*
 * FUSE over io_uring (include/uapi/linux/fuse.h 7.42, fs/fuse/dev_uring.c).  A ring entry is two
 * buffers the server registers with FUSE_IO_URING_CMD_REGISTER (an IORING_OP_URING_CMD on a
 * /dev/fuse fd of the connection, in an IORING_SETUP_SQE128 ring; sqe->addr = iovec[2], len 2):
 * iov[0] a struct pt_uring_req_header, iov[1] the payload (at least max(8192, max_write,
 * max_pages * page size) bytes).  A request arrives as: in_out = fuse_in_header, op_in = the
 * request's first argument (its per-opcode struct; in_header.len counts it), payload = the other
 * arguments, ring_ent_in_out.payload_sz their size, commit_id the id to commit with.  The reply:
 * in_out = fuse_out_header (unique, error), payload = the whole reply body, payload_sz its size;
 * FUSE_IO_URING_CMD_COMMIT_AND_FETCH (commit_id, qid) hands it in and waits for the next request.
 */
#define PT_URING_IN_OUT_HEADER_SZ 128
#define PT_URING_OP_IN_OUT_SZ 128

struct pt_uring_ent_in_out {
	uint64_t flags;
	uint64_t commit_id;
	uint32_t payload_sz;
	uint32_t padding;
	uint64_t reserved;
};

struct pt_uring_req_header {
	char in_out[PT_URING_IN_OUT_HEADER_SZ];
	char op_in[PT_URING_OP_IN_OUT_SZ];
	struct pt_uring_ent_in_out ring_ent_in_out;
};

enum pt_uring_cmd {
	PT_IO_URING_CMD_INVALID = 0,
	PT_IO_URING_CMD_REGISTER = 1,
	PT_IO_URING_CMD_COMMIT_AND_FETCH = 2,
};

/* in the 80-byte command area of the 128-byte SQE */
struct pt_uring_cmd_req {
	uint64_t flags;
	uint64_t commit_id;
	uint16_t qid;
	uint8_t padding[6];
};

_Static_assert(sizeof(struct pt_attr) == 88, "fuse_attr");
_Static_assert(sizeof(struct pt_in_header) == 40, "fuse_in_header");
_Static_assert(sizeof(struct pt_out_header) == 16, "fuse_out_header");
_Static_assert(sizeof(struct pt_init_in) == 64, "fuse_init_in");
_Static_assert(sizeof(struct pt_init_out) == 64, "fuse_init_out");
_Static_assert(__builtin_offsetof(struct pt_init_out, max_stack_depth) == 36, "max_stack_depth");
_Static_assert(sizeof(struct pt_entry_out) == 128, "fuse_entry_out");
_Static_assert(sizeof(struct pt_attr_out) == 104, "fuse_attr_out");
_Static_assert(sizeof(struct pt_setattr_in) == 88, "fuse_setattr_in");
_Static_assert(sizeof(struct pt_open_out) == 16, "fuse_open_out");
_Static_assert(sizeof(struct pt_read_in) == 40, "fuse_read_in");
_Static_assert(sizeof(struct pt_write_in) == 40, "fuse_write_in");
_Static_assert(sizeof(struct pt_kstatfs) == 80, "fuse_kstatfs");
_Static_assert(sizeof(struct pt_copy_file_range_in) == 56, "fuse_copy_file_range_in");
_Static_assert(sizeof(struct pt_dirent) == 24, "fuse_dirent");
_Static_assert(sizeof(struct pt_backing_map) == 16, "fuse_backing_map");
_Static_assert(PT_DEV_IOC_BACKING_OPEN == 0x4010E501, "BACKING_OPEN");
_Static_assert(PT_DEV_IOC_BACKING_CLOSE == 0x4004E502, "BACKING_CLOSE");
_Static_assert(PT_DEV_IOC_CLONE == 0x8004E500, "CLONE");
_Static_assert(sizeof(struct pt_uring_ent_in_out) == 32, "fuse_uring_ent_in_out");
_Static_assert(sizeof(struct pt_uring_req_header) == 288, "fuse_uring_req_header");
_Static_assert(sizeof(struct pt_uring_cmd_req) == 24, "fuse_uring_cmd_req");

#endif
