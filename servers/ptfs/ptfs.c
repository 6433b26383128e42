/*
 * ptfs - the fusecert reference passthrough server.
 *
 * Mirrors a source directory through FUSE, speaking the kernel protocol on
 * /dev/fuse directly (no libfuse).  Regular files are opened in passthrough
 * mode: one backing id per inode, registered while the inode has passthrough
 * opens, with a per-open fallback to server-side I/O when the kernel refuses a
 * backing file.  Probe modes and deliberate defects (--defect) exist so that
 * fusecert can prove its clauses can fail.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/fsuid.h>
#include <sys/mount.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "fuse_proto.h"

#define PTFS_VERSION "0.1.0"
#define MAX_WRITE (1024 * 1024)
#define MAX_PAGES (MAX_WRITE / 4096)
#define REQ_BUFSIZE (MAX_WRITE + 8192)
#define OUT_BUFSIZE (MAX_WRITE + 4096)
#define NBUCKETS 65536

/* ---- configuration ------------------------------------------------------ */

enum io_policy { POL_PASSTHROUGH, POL_CACHED, POL_DIRECT, POL_PT_DIRECT, POL_BY_ACCESS, POL_PT_READS };

enum defect {
	D_LEAK_BACKING_ID,
	D_BACKING_ID_PER_OPEN,
	D_KEEP_CACHE_WITH_PT,
	D_MIXED_MODES,
	D_STALE_ATTRS,
	D_WRITEBACK_WITH_PT,
	D_NO_PT_OPEN,
	D_BAD_STACK_DEPTH,
	D_NO_FALLBACK,
	D_GLOBAL_DISABLE,
	D_DOUBLE_CLOSE,
	D_CLOSE_BEFORE_REPLY,
	D_CORRUPT_READ,
	D_IGNORE_TRUNCATE,
	D_HANG_ON,
	D_CRASH_ON,
	D_FD_LEAK,
	D_NO_CREATE_PT,
	D_NO_TMPFILE_PT,
	D_DIRECT_IO_FOR_O_DIRECT,
	D_FSYNC_NOOP,
	D_READ_ONLY_SERVER_FD,
	D_LEAK_INODES,
	D_IGNORE_SIGTERM,
	D_NO_EXEC_BITS,
	D_READDIR_DROPS_ENTRY,
	D_SHORT_READ_EOF,
	D_KILLPRIV_V2,
	D_REPLY_WRONG_UNIQUE,
	D_REPLY_SHORT,
	D_REPLY_OVERSIZED,
	D_REPLY_BAD_ERROR,
	D_CLOSE_DEV_ON,
	D_FORK_CHILDREN,
	D_MOUNT_ELSEWHERE,
	D_SLOW_GETXATTR,
	D_COUNT
};

static const char *const defect_names[D_COUNT] = {
	[D_LEAK_BACKING_ID] = "leak-backing-id",
	[D_BACKING_ID_PER_OPEN] = "backing-id-per-open",
	[D_KEEP_CACHE_WITH_PT] = "keep-cache-with-passthrough",
	[D_MIXED_MODES] = "mixed-modes",
	[D_STALE_ATTRS] = "stale-attrs",
	[D_WRITEBACK_WITH_PT] = "writeback-with-passthrough",
	[D_NO_PT_OPEN] = "no-passthrough-open",
	[D_BAD_STACK_DEPTH] = "bad-stack-depth",
	[D_NO_FALLBACK] = "no-fallback",
	[D_GLOBAL_DISABLE] = "global-disable-on-failure",
	[D_DOUBLE_CLOSE] = "double-close",
	[D_CLOSE_BEFORE_REPLY] = "close-before-reply",
	[D_CORRUPT_READ] = "corrupt-read",
	[D_IGNORE_TRUNCATE] = "ignore-truncate",
	[D_HANG_ON] = "hang-on",
	[D_CRASH_ON] = "crash-on",
	[D_FD_LEAK] = "fd-leak",
	[D_NO_CREATE_PT] = "no-create-passthrough",
	[D_NO_TMPFILE_PT] = "no-tmpfile-passthrough",
	[D_DIRECT_IO_FOR_O_DIRECT] = "direct-io-for-o-direct",
	[D_FSYNC_NOOP] = "fsync-noop",
	[D_READ_ONLY_SERVER_FD] = "read-only-server-fd",
	[D_LEAK_INODES] = "leak-inodes",
	[D_IGNORE_SIGTERM] = "ignore-sigterm",
	[D_NO_EXEC_BITS] = "no-exec-bits",
	[D_READDIR_DROPS_ENTRY] = "readdir-drops-entry",
	[D_SHORT_READ_EOF] = "short-read-eof",
	[D_KILLPRIV_V2] = "killpriv-v2",
	[D_REPLY_WRONG_UNIQUE] = "reply-wrong-unique",
	[D_REPLY_SHORT] = "reply-short",
	[D_REPLY_OVERSIZED] = "reply-oversized",
	[D_REPLY_BAD_ERROR] = "reply-bad-error",
	[D_CLOSE_DEV_ON] = "close-dev-on",
	[D_SLOW_GETXATTR] = "slow-getxattr",
	[D_FORK_CHILDREN] = "fork-children",
	[D_MOUNT_ELSEWHERE] = "mount-elsewhere",
};

/* Defects that take an OPCODE argument. */
static inline bool takes_opcode(int d)
{
	return d == D_HANG_ON || d == D_CRASH_ON || d == D_REPLY_WRONG_UNIQUE || d == D_REPLY_SHORT ||
	       d == D_REPLY_OVERSIZED || d == D_REPLY_BAD_ERROR || d == D_CLOSE_DEV_ON;
}

static struct config {
	const char *source;
	const char *mountpoint;
	int threads;
	uint64_t timeout_sec;
	uint32_t timeout_nsec;
	bool no_allow_other; /* mount without allow_other: only the mounter (root) may enter */
	bool no_passthrough;
	uint32_t max_stack_depth;
	bool writeback;
	enum io_policy policy;
	bool ids_until_forget; /* --backing-ids until-forget: an inode keeps its id until the kernel forgets it */
	uint32_t open_flags_extra;
	const char *selfcheck_path;
	const char *init_report_path;
	bool debug;
	uint64_t defects;
	uint32_t hang_op;
	uint32_t crash_op;
	uint32_t malformed_op; /* reply-* defects */
	uint32_t close_dev_op;
} cfg = {
	.threads = 4,
	.timeout_sec = 1,
	.max_stack_depth = 1,
	.policy = POL_PASSTHROUGH,
};

static inline bool defect(enum defect d)
{
	return (cfg.defects >> d) & 1;
}

/* ---- state -------------------------------------------------------------- */

/*
 * One inode per backing (st_dev, st_ino): hard links share it, and with it
 * the backing id, as the kernel's io-mode rules require.
 */
struct inode {
	struct inode *hnext;
	int fd; /* O_PATH */
	dev_t dev;
	ino_t ino;
	uint64_t nlookup; /* table_lock */
	uint64_t nopen;   /* table_lock: live file and dir handles */

	pthread_mutex_t lock; /* everything below */
	int backing_id;       /* > 0 while passthrough opens live */
	unsigned pt_opens;
	unsigned cached_opens;
	bool have_cache; /* stale-attrs defect */
	struct stat cache;
};

enum handle_kind { H_PT, H_CACHED, H_UNCOUNTED, H_DIR };

struct handle {
	struct handle *prev, *next; /* handles_lock, for cleanup at exit */
	struct inode *inode;
	enum handle_kind kind;
	int fd;
	int own_backing_id; /* backing-id-per-open defect */
	/* directories */
	pthread_mutex_t dlock;
	DIR *dp;
	off_t pos;
	struct dirent *pending;
};

static struct {
	int devfd;
	uint64_t offered;
	uint64_t replied;
	bool pt_negotiated;      /* we asked for it in the INIT reply */
	atomic_bool pt_refused;  /* BACKING_OPEN said EPERM: the kernel did not grant it */
	atomic_bool pt_disabled; /* global-disable-on-failure defect */
	pthread_mutex_t table_lock;
	struct inode **buckets;
	struct inode root;
	pthread_mutex_t handles_lock;
	struct handle handles; /* list head */
	int done_pipe[2];
	pthread_mutex_t hang_lock;
	pthread_cond_t hang_cond;
	bool shutting_down;
	/* close-dev-on: the workers, so one of them can take every device fd away */
	struct worker *workers;
	int nworkers;
	atomic_bool dev_closed;
	int wake_pipe[2]; /* close-dev-on: gets the main thread out of its poll on the device */
} g = {
	.devfd = -1,
	.table_lock = PTHREAD_MUTEX_INITIALIZER,
	.handles_lock = PTHREAD_MUTEX_INITIALIZER,
	.hang_lock = PTHREAD_MUTEX_INITIALIZER,
	.hang_cond = PTHREAD_COND_INITIALIZER,
	.done_pipe = {-1, -1},
};

struct worker {
	pthread_t tid;
	int fd;
	bool own_fd;
	atomic_bool exited;
	char *buf;
	char *out;
};

struct req {
	struct worker *w;
	const struct pt_in_header *in;
	const char *arg;
	size_t arglen;
};

/* ---- logging and small helpers ----------------------------------------- */

static void logmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logmsg(const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	if (write(STDERR_FILENO, "ptfs: ", 6) < 0 || write(STDERR_FILENO, line, n) < 0)
		return;
}

static void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void usage_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("ptfs: error: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(2);
}

static const char *const op_names[] = {
	[PT_LOOKUP] = "LOOKUP", [PT_FORGET] = "FORGET", [PT_GETATTR] = "GETATTR",
	[PT_SETATTR] = "SETATTR", [PT_READLINK] = "READLINK", [PT_SYMLINK] = "SYMLINK",
	[PT_MKNOD] = "MKNOD", [PT_MKDIR] = "MKDIR", [PT_UNLINK] = "UNLINK",
	[PT_RMDIR] = "RMDIR", [PT_RENAME] = "RENAME", [PT_LINK] = "LINK",
	[PT_OPEN] = "OPEN", [PT_READ] = "READ", [PT_WRITE] = "WRITE",
	[PT_STATFS] = "STATFS", [PT_RELEASE] = "RELEASE", [PT_FSYNC] = "FSYNC",
	[PT_SETXATTR] = "SETXATTR", [PT_GETXATTR] = "GETXATTR", [PT_LISTXATTR] = "LISTXATTR",
	[PT_REMOVEXATTR] = "REMOVEXATTR", [PT_FLUSH] = "FLUSH", [PT_INIT] = "INIT",
	[PT_OPENDIR] = "OPENDIR", [PT_READDIR] = "READDIR", [PT_RELEASEDIR] = "RELEASEDIR",
	[PT_FSYNCDIR] = "FSYNCDIR", [PT_GETLK] = "GETLK", [PT_SETLK] = "SETLK",
	[PT_SETLKW] = "SETLKW", [PT_ACCESS] = "ACCESS", [PT_CREATE] = "CREATE",
	[PT_INTERRUPT] = "INTERRUPT", [PT_BMAP] = "BMAP", [PT_DESTROY] = "DESTROY",
	[PT_IOCTL] = "IOCTL", [PT_POLL] = "POLL", [PT_NOTIFY_REPLY] = "NOTIFY_REPLY",
	[PT_BATCH_FORGET] = "BATCH_FORGET", [PT_FALLOCATE] = "FALLOCATE",
	[PT_READDIRPLUS] = "READDIRPLUS", [PT_RENAME2] = "RENAME2", [PT_LSEEK] = "LSEEK",
	[PT_COPY_FILE_RANGE] = "COPY_FILE_RANGE", [PT_SETUPMAPPING] = "SETUPMAPPING",
	[PT_REMOVEMAPPING] = "REMOVEMAPPING", [PT_SYNCFS] = "SYNCFS", [PT_TMPFILE] = "TMPFILE",
	[PT_STATX] = "STATX",
};
#define N_OP_NAMES (sizeof(op_names) / sizeof(op_names[0]))

static const char *opname(uint32_t op)
{
	if (op < N_OP_NAMES && op_names[op])
		return op_names[op];
	return "UNKNOWN";
}

static uint32_t parse_opcode(const char *s)
{
	char *end;
	unsigned long v = strtoul(s, &end, 0);
	if (*s && !*end && v > 0 && v < 100000)
		return (uint32_t)v;
	const char *name = s;
	if (strncasecmp(name, "FUSE_", 5) == 0)
		name += 5;
	for (uint32_t i = 0; i < N_OP_NAMES; i++)
		if (op_names[i] && strcasecmp(op_names[i], name) == 0)
			return i;
	usage_error("unknown opcode '%s' (use a name like OPEN or a number)", s);
}

static const char *errname(int e)
{
	switch (e) {
	case EPERM: return "EPERM";
	case ENOENT: return "ENOENT";
	case EIO: return "EIO";
	case EBADF: return "EBADF";
	case EFAULT: return "EFAULT";
	case EINVAL: return "EINVAL";
	case EISDIR: return "EISDIR";
	case ELOOP: return "ELOOP";
	case ENOTTY: return "ENOTTY";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case ENOSYS: return "ENOSYS";
	case EACCES: return "EACCES";
	case ENOMEM: return "ENOMEM";
	case ENODEV: return "ENODEV";
	case EXDEV: return "EXDEV";
	case ENOSPC: return "ENOSPC";
	default: return NULL;
	}
}

static void proc_path(char *buf, size_t len, int fd)
{
	snprintf(buf, len, "/proc/self/fd/%d", fd);
}

/* ---- inode table -------------------------------------------------------- */

static inline uint64_t nodeid_of(struct inode *ino)
{
	return ino == &g.root ? PT_ROOT_ID : (uint64_t)(uintptr_t)ino;
}

static inline struct inode *inode_of(uint64_t nodeid)
{
	return nodeid == PT_ROOT_ID ? &g.root : (struct inode *)(uintptr_t)nodeid;
}

static inline size_t bucket_of(dev_t dev, ino_t ino)
{
	uint64_t h = (uint64_t)ino * 0x9E3779B97F4A7C15ULL ^ (uint64_t)dev;
	return (size_t)(h >> 16) % NBUCKETS;
}

static void inode_init_common(struct inode *ino, int fd, const struct stat *st)
{
	ino->fd = fd;
	ino->dev = st->st_dev;
	ino->ino = st->st_ino;
	pthread_mutex_init(&ino->lock, NULL);
}

/* Takes ownership of fd.  Returns the inode with one more lookup. */
static struct inode *inode_get(int fd, const struct stat *st)
{
	size_t b = bucket_of(st->st_dev, st->st_ino);
	pthread_mutex_lock(&g.table_lock);
	for (struct inode *p = g.buckets[b]; p; p = p->hnext) {
		if (p->dev == st->st_dev && p->ino == st->st_ino) {
			p->nlookup++;
			pthread_mutex_unlock(&g.table_lock);
			close(fd);
			return p;
		}
	}
	struct inode *ino = calloc(1, sizeof(*ino));
	if (!ino) {
		pthread_mutex_unlock(&g.table_lock);
		close(fd);
		return NULL;
	}
	inode_init_common(ino, fd, st);
	ino->nlookup = 1;
	ino->hnext = g.buckets[b];
	g.buckets[b] = ino;
	pthread_mutex_unlock(&g.table_lock);
	return ino;
}

static void inode_free(struct inode *ino)
{
	close(ino->fd);
	pthread_mutex_destroy(&ino->lock);
	free(ino);
}

/* Caller holds table_lock.  Frees the inode once the kernel and handles are done. */
static bool inode_maybe_drop_locked(struct inode *ino)
{
	if (ino == &g.root || ino->nlookup > 0 || ino->nopen > 0)
		return false;
	if (defect(D_LEAK_INODES))
		return false;
	struct inode **pp = &g.buckets[bucket_of(ino->dev, ino->ino)];
	while (*pp && *pp != ino)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = ino->hnext;
	return true;
}

static void backing_release(int id);

/*
 * An inode the kernel and every handle are done with. Under --backing-ids until-forget its id was
 * kept after the last passthrough release and is closed now: the backing file stays pinned until
 * the kernel forgets the inode (which, for an unlinked file, comes right after its last close).
 */
static void inode_gone(struct inode *ino)
{
	if (ino->backing_id > 0) {
		backing_release(ino->backing_id);
		ino->backing_id = 0;
	}
	inode_free(ino);
}

static void inode_forget(struct inode *ino, uint64_t n)
{
	pthread_mutex_lock(&g.table_lock);
	if (ino != &g.root)
		ino->nlookup = n > ino->nlookup ? 0 : ino->nlookup - n;
	bool drop = inode_maybe_drop_locked(ino);
	pthread_mutex_unlock(&g.table_lock);
	if (drop)
		inode_gone(ino);
}

static void inode_open_ref(struct inode *ino)
{
	pthread_mutex_lock(&g.table_lock);
	ino->nopen++;
	pthread_mutex_unlock(&g.table_lock);
}

static void inode_open_unref(struct inode *ino)
{
	pthread_mutex_lock(&g.table_lock);
	ino->nopen--;
	bool drop = inode_maybe_drop_locked(ino);
	pthread_mutex_unlock(&g.table_lock);
	if (drop)
		inode_gone(ino);
}

/* ---- handles ------------------------------------------------------------ */

static struct handle *handle_new(struct inode *ino, int fd, enum handle_kind kind)
{
	struct handle *h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	h->inode = ino;
	h->fd = fd;
	h->kind = kind;
	pthread_mutex_init(&h->dlock, NULL);
	inode_open_ref(ino);
	pthread_mutex_lock(&g.handles_lock);
	h->next = g.handles.next;
	h->prev = &g.handles;
	g.handles.next->prev = h;
	g.handles.next = h;
	pthread_mutex_unlock(&g.handles_lock);
	return h;
}

static void handle_unlink(struct handle *h)
{
	pthread_mutex_lock(&g.handles_lock);
	h->prev->next = h->next;
	h->next->prev = h->prev;
	pthread_mutex_unlock(&g.handles_lock);
}

static void handle_destroy(struct handle *h)
{
	if (h->dp)
		closedir(h->dp);
	else if (h->fd >= 0)
		close(h->fd);
	pthread_mutex_destroy(&h->dlock);
	struct inode *ino = h->inode;
	free(h);
	inode_open_unref(ino);
}

static inline struct handle *handle_of(uint64_t fh)
{
	return (struct handle *)(uintptr_t)fh;
}

/* ---- replies ------------------------------------------------------------ */

/* Returns 0, or -errno of the write (ENOENT: the request was interrupted). */
static int reply_iov(struct req *r, int err, struct iovec *iov, int cnt)
{
	struct iovec v[5];
	struct pt_out_header oh;
	size_t len = sizeof(oh);
	v[0].iov_base = &oh;
	v[0].iov_len = sizeof(oh);
	for (int i = 0; i < cnt && err == 0; i++) {
		v[1 + i] = iov[i];
		len += iov[i].iov_len;
	}
	if (err)
		cnt = 0;
	oh.len = (uint32_t)len;
	oh.error = err ? -err : 0;
	oh.unique = r->in->unique;
	static char junk[64];
	if (r->in->opcode == cfg.malformed_op) {
		if (defect(D_REPLY_WRONG_UNIQUE)) {
			oh.unique = r->in->unique + 1000000007ULL;
			logmsg("defect reply-wrong-unique: answering %s (unique %" PRIu64 ") as unique %" PRIu64,
			       opname(r->in->opcode), r->in->unique, oh.unique);
		} else if (defect(D_REPLY_BAD_ERROR)) {
			oh.error = -1000; /* outside (-512, 0]: the kernel refuses the reply */
			cnt = 0;
			len = oh.len = sizeof(oh);
			logmsg("defect reply-bad-error: answering %s with error -1000", opname(r->in->opcode));
		} else if (defect(D_REPLY_SHORT) && cnt > 0 && err == 0) {
			size_t body = len - sizeof(oh);
			size_t cut = body / 2 < v[cnt].iov_len ? body / 2 : v[cnt].iov_len;
			v[cnt].iov_len -= cut;
			len -= cut;
			oh.len = (uint32_t)len;
			logmsg("defect reply-short: answering %s with %zu of %zu bytes", opname(r->in->opcode), len, len + cut);
		} else if (defect(D_REPLY_OVERSIZED) && err == 0) {
			v[1 + cnt].iov_base = junk;
			v[1 + cnt].iov_len = sizeof(junk);
			cnt++;
			len += sizeof(junk);
			oh.len = (uint32_t)len;
			logmsg("defect reply-oversized: answering %s with %zu extra bytes", opname(r->in->opcode), sizeof(junk));
		}
	}
	if (cfg.debug)
		logmsg("   unique %" PRIu64 ": %s -> %s%s (%zu bytes)", r->in->unique, opname(r->in->opcode),
		       err ? "error " : "ok", err ? (errname(err) ? errname(err) : strerror(err)) : "", len);
	ssize_t n = writev(r->w->fd, v, 1 + cnt);
	if (n < 0) {
		int e = errno;
		if ((e != ENOENT && e != ENODEV) || r->in->opcode == cfg.malformed_op)
			logmsg("reply to %s failed: %s", opname(r->in->opcode), strerror(e));
		return -e;
	}
	return 0;
}

static int reply_err(struct req *r, int err)
{
	return reply_iov(r, err, NULL, 0);
}

static int reply_buf(struct req *r, const void *p, size_t len)
{
	struct iovec v = {.iov_base = (void *)p, .iov_len = len};
	return reply_iov(r, 0, &v, len ? 1 : 0);
}

/* The kernel's "new" dev_t encoding used in fuse_attr.rdev and mknod. */
static inline uint32_t encode_dev(dev_t d)
{
	unsigned maj = major(d), min = minor(d);
	return (min & 0xff) | (maj << 8) | ((min & ~0xffU) << 12);
}

static inline dev_t decode_dev(uint32_t v)
{
	return makedev((v & 0xfff00) >> 8, (v & 0xff) | ((v >> 12) & 0xfff00));
}

static void fill_attr(struct pt_attr *a, const struct stat *st)
{
	memset(a, 0, sizeof(*a));
	a->ino = st->st_ino;
	a->size = st->st_size;
	a->blocks = st->st_blocks;
	a->atime = st->st_atim.tv_sec;
	a->mtime = st->st_mtim.tv_sec;
	a->ctime = st->st_ctim.tv_sec;
	a->atimensec = st->st_atim.tv_nsec;
	a->mtimensec = st->st_mtim.tv_nsec;
	a->ctimensec = st->st_ctim.tv_nsec;
	a->mode = st->st_mode;
	if (defect(D_NO_EXEC_BITS) && S_ISREG(st->st_mode))
		a->mode &= ~(uint32_t)0111;
	a->nlink = st->st_nlink;
	a->uid = st->st_uid;
	a->gid = st->st_gid;
	a->rdev = encode_dev(st->st_rdev);
	a->blksize = st->st_blksize;
}

static int stat_inode(struct inode *ino, struct stat *st)
{
	if (fstatat(ino->fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	return 0;
}

static void cache_attrs(struct inode *ino, const struct stat *st)
{
	if (!defect(D_STALE_ATTRS))
		return;
	pthread_mutex_lock(&ino->lock);
	ino->cache = *st;
	ino->have_cache = true;
	pthread_mutex_unlock(&ino->lock);
}

static void fill_entry(struct pt_entry_out *e, struct inode *ino, const struct stat *st)
{
	memset(e, 0, sizeof(*e));
	e->nodeid = nodeid_of(ino);
	e->entry_valid = cfg.timeout_sec;
	e->entry_valid_nsec = cfg.timeout_nsec;
	e->attr_valid = cfg.timeout_sec;
	e->attr_valid_nsec = cfg.timeout_nsec;
	fill_attr(&e->attr, st);
}

/* Look name up below parent; on success one more lookup on *out. */
static int do_lookup(struct inode *parent, const char *name, struct inode **out, struct stat *st)
{
	int fd = openat(parent->fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstatat(fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	struct inode *ino = inode_get(fd, st);
	if (!ino)
		return -ENOMEM;
	cache_attrs(ino, st);
	*out = ino;
	return 0;
}

/* Reply with an entry; if the reply cannot be delivered, undo the lookup. */
static void reply_entry(struct req *r, struct inode *ino, const struct stat *st)
{
	struct pt_entry_out e;
	fill_entry(&e, ino, st);
	if (reply_buf(r, &e, sizeof(e)) == -ENOENT)
		inode_forget(ino, 1);
}

/* ---- backing ids -------------------------------------------------------- */

static int backing_open(int fd)
{
	struct pt_backing_map map = {.fd = fd, .flags = 0, .padding = 0};
	int id = ioctl(g.devfd, PT_DEV_IOC_BACKING_OPEN, &map);
	if (id < 0)
		return -errno;
	return id;
}

static int backing_close(int id)
{
	uint32_t v = (uint32_t)id;
	if (ioctl(g.devfd, PT_DEV_IOC_BACKING_CLOSE, &v) < 0)
		return -errno;
	return 0;
}

static void backing_release(int id)
{
	int rc = backing_close(id);
	if (rc < 0)
		logmsg("BACKING_CLOSE %d failed: %s", id, strerror(-rc));
	if (defect(D_DOUBLE_CLOSE)) {
		rc = backing_close(id);
		if (rc < 0)
			logmsg("second BACKING_CLOSE %d failed: %s (ignored)", id, strerror(-rc));
	}
}

/*
 * Decide how a new open of an inode is served and fill the open reply.
 * The rule that keeps the kernel's io modes apart: an inode with cached opens
 * gets cached opens; an inode with a backing id gets passthrough opens naming
 * that id; otherwise the open tries to register the inode's backing id, and
 * falls back to cached (server-side read/write) if the kernel refuses it.
 */
/* How the file came to be opened: the create paths have defects of their own. */
enum open_kind { K_OPEN, K_CREATE, K_TMPFILE };

static int choose_io_mode(struct handle *h, int flags, enum open_kind kind, struct pt_open_out *oo)
{
	int accmode = flags & O_ACCMODE;
	struct inode *ino = h->inode;
	uint32_t pt_extra = 0;
	bool counted_cached = true;
	uint32_t cached_flags = 0;

	memset(oo, 0, sizeof(*oo));
	oo->fh = (uint64_t)(uintptr_t)h;

	/* The defect: O_DIRECT opens answered FOPEN_DIRECT_IO without passthrough. Such an open takes
	 * no io mode, so the kernel lets it sit beside passthrough opens, but it cannot be mapped
	 * while the inode has a backing object (ENODEV). */
	if (defect(D_DIRECT_IO_FOR_O_DIRECT) && (flags & O_DIRECT)) {
		h->kind = H_UNCOUNTED;
		oo->open_flags = PT_FOPEN_DIRECT_IO;
		return 0;
	}

	if (cfg.policy == POL_PT_DIRECT) {
		pt_extra = PT_FOPEN_DIRECT_IO;
		cached_flags = PT_FOPEN_DIRECT_IO;
		counted_cached = false;
	}
	if (defect(D_KEEP_CACHE_WITH_PT))
		pt_extra |= PT_FOPEN_KEEP_CACHE;

	bool try_pt = g.pt_negotiated && cfg.policy != POL_CACHED && cfg.policy != POL_DIRECT &&
		      !defect(D_NO_PT_OPEN) && !(kind == K_CREATE && defect(D_NO_CREATE_PT)) &&
		      !(kind == K_TMPFILE && defect(D_NO_TMPFILE_PT));
	bool unguarded = cfg.policy == POL_BY_ACCESS || defect(D_MIXED_MODES);
	bool keeps_trying = defect(D_WRITEBACK_WITH_PT) || defect(D_BAD_STACK_DEPTH);
	if (unguarded && accmode == O_RDONLY)
		try_pt = false;
	if (atomic_load(&g.pt_refused) && !keeps_trying)
		try_pt = false;
	if (defect(D_GLOBAL_DISABLE) && atomic_load(&g.pt_disabled))
		try_pt = false;
	if (cfg.policy == POL_DIRECT) {
		cached_flags = PT_FOPEN_DIRECT_IO;
		counted_cached = false;
	}

	/* passthrough-reads: only read-only opens ask for a backing file; an open for writing joins
	 * the inode's backing object when the inode is in passthrough already (cached beside it
	 * would be refused by the kernel), and is served by the server otherwise. */
	bool join_only = cfg.policy == POL_PT_READS && accmode != O_RDONLY;

	pthread_mutex_lock(&ino->lock);
	int id = 0;
	if (try_pt && join_only) {
		id = ino->pt_opens > 0 ? ino->backing_id : 0;
	} else if (try_pt) {
		if (defect(D_BACKING_ID_PER_OPEN)) {
			id = backing_open(h->fd);
			if (id > 0)
				h->own_backing_id = id;
		} else if (!unguarded && ino->cached_opens > 0) {
			id = 0; /* never mix: this inode is in cached mode */
		} else if (ino->backing_id > 0) {
			id = ino->backing_id;
		} else {
			id = backing_open(h->fd);
			if (id > 0) {
				ino->backing_id = id;
				if (defect(D_CLOSE_BEFORE_REPLY)) {
					backing_release(id);
					ino->backing_id = 0;
				}
			}
		}
		if (id < 0) {
			int e = -id;
			if (defect(D_NO_FALLBACK) || keeps_trying) {
				pthread_mutex_unlock(&ino->lock);
				if (cfg.debug || keeps_trying)
					logmsg("BACKING_OPEN failed: %s; failing the open", strerror(e));
				return keeps_trying ? -EIO : -e;
			}
			if (e == EPERM) {
				if (!atomic_exchange(&g.pt_refused, true))
					logmsg("BACKING_OPEN: EPERM, passthrough was not granted; serving I/O without it");
			} else {
				if (cfg.debug)
					logmsg("BACKING_OPEN failed: %s; this open falls back to server I/O",
					       strerror(e));
				if (defect(D_GLOBAL_DISABLE))
					atomic_store(&g.pt_disabled, true);
			}
			id = 0;
		}
	}
	if (id > 0) {
		ino->pt_opens++;
		h->kind = H_PT;
		oo->open_flags = PT_FOPEN_PASSTHROUGH | pt_extra;
		oo->backing_id = id;
	} else if (counted_cached) {
		ino->cached_opens++;
		h->kind = H_CACHED;
		oo->open_flags = cached_flags;
	} else {
		h->kind = H_UNCOUNTED;
		oo->open_flags = cached_flags;
	}
	oo->open_flags |= cfg.open_flags_extra;
	if (cfg.debug)
		logmsg("   open of inode %p: open_flags 0x%x backing_id %d (pt_opens %u cached_opens %u)",
		       (void *)ino, oo->open_flags, oo->backing_id, ino->pt_opens, ino->cached_opens);
	pthread_mutex_unlock(&ino->lock);
	return 0;
}

/* Undo choose_io_mode: the release side of the io-mode bookkeeping. */
static void release_io_mode(struct handle *h)
{
	struct inode *ino = h->inode;
	pthread_mutex_lock(&ino->lock);
	if (h->kind == H_PT) {
		ino->pt_opens--;
		if (h->own_backing_id > 0) {
			backing_release(h->own_backing_id);
			h->own_backing_id = 0;
		} else if (ino->pt_opens == 0 && ino->backing_id > 0 && !cfg.ids_until_forget) {
			if (!defect(D_LEAK_BACKING_ID))
				backing_release(ino->backing_id);
			ino->backing_id = 0;
		}
	} else if (h->kind == H_CACHED) {
		ino->cached_opens--;
	}
	pthread_mutex_unlock(&ino->lock);
}

static void release_handle(struct handle *h)
{
	if (h->kind != H_DIR)
		release_io_mode(h);
	handle_unlink(h);
	handle_destroy(h);
}

/* ---- credentials for creating ops ---------------------------------------- */

static void as_caller(const struct pt_in_header *in)
{
	setfsgid(in->gid);
	setfsuid(in->uid);
}

static void as_server(void)
{
	setfsuid(0);
	setfsgid(0);
}

/* ---- operations --------------------------------------------------------- */

static const char *arg_string(struct req *r, size_t off, size_t *next)
{
	if (off >= r->arglen)
		return NULL;
	const char *s = r->arg + off;
	size_t n = strnlen(s, r->arglen - off);
	if (off + n >= r->arglen)
		return NULL;
	if (next)
		*next = off + n + 1;
	return s;
}

static void op_lookup(struct req *r, struct inode *parent)
{
	const char *name = arg_string(r, 0, NULL);
	if (!name)
		return (void)reply_err(r, EINVAL);
	struct inode *ino;
	struct stat st;
	int rc = do_lookup(parent, name, &ino, &st);
	if (rc < 0)
		return (void)reply_err(r, -rc);
	reply_entry(r, ino, &st);
}

static void op_forget(struct req *r, struct inode *ino)
{
	const struct pt_forget_in *fi = (const void *)r->arg;
	if (r->arglen >= sizeof(*fi))
		inode_forget(ino, fi->nlookup);
}

static void op_batch_forget(struct req *r)
{
	const struct pt_batch_forget_in *bi = (const void *)r->arg;
	if (r->arglen < sizeof(*bi))
		return;
	const struct pt_forget_one *one = (const void *)(r->arg + sizeof(*bi));
	size_t max = (r->arglen - sizeof(*bi)) / sizeof(*one);
	for (size_t i = 0; i < bi->count && i < max; i++)
		inode_forget(inode_of(one[i].nodeid), one[i].nlookup);
}

static void reply_attr(struct req *r, const struct stat *st)
{
	struct pt_attr_out ao;
	memset(&ao, 0, sizeof(ao));
	ao.attr_valid = cfg.timeout_sec;
	ao.attr_valid_nsec = cfg.timeout_nsec;
	fill_attr(&ao.attr, st);
	reply_buf(r, &ao, sizeof(ao));
}

static void op_getattr(struct req *r, struct inode *ino)
{
	struct stat st;
	if (defect(D_STALE_ATTRS)) {
		pthread_mutex_lock(&ino->lock);
		bool have = ino->have_cache;
		st = ino->cache;
		pthread_mutex_unlock(&ino->lock);
		if (have)
			return reply_attr(r, &st);
	}
	int rc = stat_inode(ino, &st);
	if (rc < 0)
		return (void)reply_err(r, -rc);
	cache_attrs(ino, &st);
	reply_attr(r, &st);
}

static void op_setattr(struct req *r, struct inode *ino)
{
	const struct pt_setattr_in *si = (const void *)r->arg;
	if (r->arglen < sizeof(*si))
		return (void)reply_err(r, EINVAL);
	char path[64];
	proc_path(path, sizeof(path), ino->fd);
	struct handle *h = (si->valid & PT_FATTR_FH) ? handle_of(si->fh) : NULL;
	int hfd = (h && h->kind != H_DIR && h->fd >= 0) ? h->fd : -1;
	struct stat st;
	int rc = stat_inode(ino, &st);
	if (rc < 0)
		return (void)reply_err(r, -rc);

	if (si->valid & PT_FATTR_MODE) {
		rc = hfd >= 0 ? fchmod(hfd, si->mode) : chmod(path, si->mode);
		if (rc < 0)
			return (void)reply_err(r, errno);
	}
	if (si->valid & (PT_FATTR_UID | PT_FATTR_GID)) {
		uid_t uid = (si->valid & PT_FATTR_UID) ? si->uid : (uid_t)-1;
		gid_t gid = (si->valid & PT_FATTR_GID) ? si->gid : (gid_t)-1;
		if (fchownat(ino->fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
			return (void)reply_err(r, errno);
	}
	if ((si->valid & PT_FATTR_SIZE) && !defect(D_IGNORE_TRUNCATE)) {
		rc = hfd >= 0 ? ftruncate(hfd, (off_t)si->size) : -1;
		/* O_RDONLY|O_TRUNC opens truncate through a read-only handle */
		if (rc < 0 && (hfd < 0 || errno == EBADF || errno == EINVAL))
			rc = truncate(path, (off_t)si->size);
		if (rc < 0)
			return (void)reply_err(r, errno);
	}
	if (si->valid & (PT_FATTR_ATIME | PT_FATTR_MTIME)) {
		struct timespec ts[2];
		ts[0].tv_sec = 0;
		ts[0].tv_nsec = UTIME_OMIT;
		ts[1] = ts[0];
		if (si->valid & PT_FATTR_ATIME_NOW)
			ts[0].tv_nsec = UTIME_NOW;
		else if (si->valid & PT_FATTR_ATIME) {
			ts[0].tv_sec = (time_t)si->atime;
			ts[0].tv_nsec = si->atimensec;
		}
		if (si->valid & PT_FATTR_MTIME_NOW)
			ts[1].tv_nsec = UTIME_NOW;
		else if (si->valid & PT_FATTR_MTIME) {
			ts[1].tv_sec = (time_t)si->mtime;
			ts[1].tv_nsec = si->mtimensec;
		}
		if (S_ISLNK(st.st_mode))
			rc = utimensat(ino->fd, "", ts, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW);
		else
			rc = hfd >= 0 ? futimens(hfd, ts) : utimensat(AT_FDCWD, path, ts, 0);
		if (rc < 0)
			return (void)reply_err(r, errno);
	}
	rc = stat_inode(ino, &st);
	if (rc < 0)
		return (void)reply_err(r, -rc);
	cache_attrs(ino, &st);
	reply_attr(r, &st);
}

static void op_readlink(struct req *r, struct inode *ino)
{
	char buf[PATH_MAX + 1];
	ssize_t n = readlinkat(ino->fd, "", buf, sizeof(buf));
	if (n < 0)
		return (void)reply_err(r, errno);
	if ((size_t)n >= sizeof(buf))
		return (void)reply_err(r, ENAMETOOLONG);
	reply_buf(r, buf, (size_t)n);
}

/* Common tail of mknod/mkdir/symlink/link: look the new name up and reply. */
static void reply_new_entry(struct req *r, struct inode *parent, const char *name)
{
	struct inode *ino;
	struct stat st;
	int rc = do_lookup(parent, name, &ino, &st);
	if (rc < 0)
		return (void)reply_err(r, -rc);
	reply_entry(r, ino, &st);
}

static void op_mknod(struct req *r, struct inode *parent)
{
	const struct pt_mknod_in *mi = (const void *)r->arg;
	const char *name = arg_string(r, sizeof(*mi), NULL);
	if (r->arglen < sizeof(*mi) || !name)
		return (void)reply_err(r, EINVAL);
	as_caller(r->in);
	int rc = mknodat(parent->fd, name, mi->mode, decode_dev(mi->rdev));
	int e = errno;
	as_server();
	if (rc < 0)
		return (void)reply_err(r, e);
	reply_new_entry(r, parent, name);
}

static void op_mkdir(struct req *r, struct inode *parent)
{
	const struct pt_mkdir_in *mi = (const void *)r->arg;
	const char *name = arg_string(r, sizeof(*mi), NULL);
	if (r->arglen < sizeof(*mi) || !name)
		return (void)reply_err(r, EINVAL);
	as_caller(r->in);
	int rc = mkdirat(parent->fd, name, mi->mode);
	int e = errno;
	as_server();
	if (rc < 0)
		return (void)reply_err(r, e);
	reply_new_entry(r, parent, name);
}

static void op_symlink(struct req *r, struct inode *parent)
{
	size_t next;
	const char *name = arg_string(r, 0, &next);
	const char *target = name ? arg_string(r, next, NULL) : NULL;
	if (!target)
		return (void)reply_err(r, EINVAL);
	as_caller(r->in);
	int rc = symlinkat(target, parent->fd, name);
	int e = errno;
	as_server();
	if (rc < 0)
		return (void)reply_err(r, e);
	reply_new_entry(r, parent, name);
}

static void op_link(struct req *r, struct inode *newparent)
{
	const struct pt_link_in *li = (const void *)r->arg;
	const char *name = arg_string(r, sizeof(*li), NULL);
	if (r->arglen < sizeof(*li) || !name)
		return (void)reply_err(r, EINVAL);
	struct inode *ino = inode_of(li->oldnodeid);
	char path[64];
	proc_path(path, sizeof(path), ino->fd);
	if (linkat(AT_FDCWD, path, newparent->fd, name, AT_SYMLINK_FOLLOW) < 0)
		return (void)reply_err(r, errno);
	reply_new_entry(r, newparent, name);
}

static void op_unlink(struct req *r, struct inode *parent, bool dir)
{
	const char *name = arg_string(r, 0, NULL);
	if (!name)
		return (void)reply_err(r, EINVAL);
	if (unlinkat(parent->fd, name, dir ? AT_REMOVEDIR : 0) < 0)
		return (void)reply_err(r, errno);
	reply_err(r, 0);
}

static void op_rename(struct req *r, struct inode *parent, bool v2)
{
	uint64_t newdir;
	uint32_t flags = 0;
	size_t off;
	if (v2) {
		const struct pt_rename2_in *ri = (const void *)r->arg;
		if (r->arglen < sizeof(*ri))
			return (void)reply_err(r, EINVAL);
		newdir = ri->newdir;
		flags = ri->flags;
		off = sizeof(*ri);
	} else {
		const struct pt_rename_in *ri = (const void *)r->arg;
		if (r->arglen < sizeof(*ri))
			return (void)reply_err(r, EINVAL);
		newdir = ri->newdir;
		off = sizeof(*ri);
	}
	size_t next;
	const char *oldname = arg_string(r, off, &next);
	const char *newname = oldname ? arg_string(r, next, NULL) : NULL;
	if (!newname)
		return (void)reply_err(r, EINVAL);
	if (renameat2(parent->fd, oldname, inode_of(newdir)->fd, newname, flags) < 0)
		return (void)reply_err(r, errno);
	reply_err(r, 0);
}

/* With the writeback cache the kernel reads pages through any handle, even a
 * write-only one, to fill partial pages before writing them back. */
static int upgrade_wronly(int f)
{
	if ((g.replied & PT_INIT_WRITEBACK_CACHE) && (f & O_ACCMODE) == O_WRONLY)
		f = (f & ~O_ACCMODE) | O_RDWR;
	return f;
}

static int server_open_flags(uint32_t flags)
{
	/* The kernel owns append, truncation and direct I/O semantics; our fd
	 * must honour the offsets it sends. */
	int f = (int)flags & ~(O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC | O_NOFOLLOW | O_APPEND | O_DIRECT);
	return upgrade_wronly(f) | O_CLOEXEC;
}

static void fd_leak_defect(struct inode *ino)
{
	if (!defect(D_FD_LEAK))
		return;
	char path[64];
	proc_path(path, sizeof(path), ino->fd);
	if (open(path, O_RDONLY | O_CLOEXEC) < 0) { /* leaked on purpose */
	}
}

/* Deliver an open/create reply; if it cannot be delivered, release the handle ourselves. */
static void reply_open(struct req *r, struct handle *h, const void *p, size_t len)
{
	if (reply_buf(r, p, len) == -ENOENT)
		release_handle(h);
}

static void op_open(struct req *r, struct inode *ino)
{
	const struct pt_open_in *oi = (const void *)r->arg;
	if (r->arglen < sizeof(*oi))
		return (void)reply_err(r, EINVAL);
	char path[64];
	proc_path(path, sizeof(path), ino->fd);
	/* The defect: the server opens its own fd read-only whatever the open asks, enough for
	 * BACKING_OPEN (the kernel reopens the backing file with the user's flags), so it never
	 * learns that the file cannot be opened for writing (a read-only source: EROFS). */
	bool ro_fd = defect(D_READ_ONLY_SERVER_FD) && g.pt_negotiated;
	int fd = open(path, ro_fd ? (server_open_flags(oi->flags) & ~O_ACCMODE) | O_RDONLY : server_open_flags(oi->flags));
	if (fd < 0)
		return (void)reply_err(r, errno);
	struct handle *h = handle_new(ino, fd, H_CACHED);
	if (!h) {
		close(fd);
		return (void)reply_err(r, ENOMEM);
	}
	struct pt_open_out oo;
	int rc = choose_io_mode(h, (int)oi->flags, K_OPEN, &oo);
	if (rc < 0) {
		h->kind = H_UNCOUNTED;
		handle_unlink(h);
		handle_destroy(h);
		return (void)reply_err(r, -rc);
	}
	if (ro_fd && h->kind != H_PT && (oi->flags & O_ACCMODE) != O_RDONLY) {
		/* served by the server after all: it needs an fd it can write through */
		int wfd = open(path, server_open_flags(oi->flags));
		if (wfd < 0) {
			int e = errno;
			release_handle(h);
			return (void)reply_err(r, e);
		}
		close(h->fd);
		h->fd = wfd;
	}
	fd_leak_defect(ino);
	reply_open(r, h, &oo, sizeof(oo));
}

/* CREATE, and TMPFILE (O_TMPFILE: the same request and reply; the kernel's name is "/",
 * the file is made unnamed in the parent directory). */
static void op_create(struct req *r, struct inode *parent, enum open_kind kind)
{
	const struct pt_create_in *ci = (const void *)r->arg;
	const char *name = arg_string(r, sizeof(*ci), NULL);
	if (r->arglen < sizeof(*ci) || !name)
		return (void)reply_err(r, EINVAL);
	int flags = upgrade_wronly((int)ci->flags & ~(O_NOCTTY | O_APPEND | O_DIRECT | O_TMPFILE)) | O_CLOEXEC;
	as_caller(r->in);
	int fd = kind == K_TMPFILE ? openat(parent->fd, ".", (flags & ~O_CREAT) | O_TMPFILE, ci->mode)
				   : openat(parent->fd, name, flags | O_CREAT, ci->mode);
	int e = errno;
	as_server();
	if (fd < 0)
		return (void)reply_err(r, e);
	/* The inode is the file we created, whatever happens to the name meanwhile. */
	struct stat st;
	char path[64];
	proc_path(path, sizeof(path), fd);
	int pfd = open(path, O_PATH | O_CLOEXEC);
	if (pfd < 0 || fstat(fd, &st) < 0) {
		e = errno;
		if (pfd >= 0)
			close(pfd);
		close(fd);
		return (void)reply_err(r, e);
	}
	struct inode *ino = inode_get(pfd, &st);
	if (!ino) {
		close(fd);
		return (void)reply_err(r, ENOMEM);
	}
	cache_attrs(ino, &st);
	int rc;
	struct handle *h = handle_new(ino, fd, H_CACHED);
	if (!h) {
		close(fd);
		inode_forget(ino, 1);
		return (void)reply_err(r, ENOMEM);
	}
	struct {
		struct pt_entry_out e;
		struct pt_open_out o;
	} out;
	_Static_assert(sizeof(out) == sizeof(struct pt_entry_out) + sizeof(struct pt_open_out), "create reply");
	rc = choose_io_mode(h, (int)ci->flags, kind, &out.o);
	if (rc < 0) {
		h->kind = H_UNCOUNTED;
		handle_unlink(h);
		handle_destroy(h);
		inode_forget(ino, 1);
		return (void)reply_err(r, -rc);
	}
	fd_leak_defect(ino);
	fill_entry(&out.e, ino, &st);
	if (reply_buf(r, &out, sizeof(out)) == -ENOENT) {
		release_handle(h);
		inode_forget(ino, 1);
	}
}

static void op_read(struct req *r)
{
	const struct pt_read_in *ri = (const void *)r->arg;
	if (r->arglen < sizeof(*ri))
		return (void)reply_err(r, EINVAL);
	struct handle *h = handle_of(ri->fh);
	size_t size = ri->size > OUT_BUFSIZE ? OUT_BUFSIZE : ri->size;
	ssize_t n = pread(h->fd, r->w->out, size, (off_t)ri->offset);
	if (n < 0)
		return (void)reply_err(r, errno);
	if (defect(D_CORRUPT_READ) && n > 0)
		r->w->out[0] ^= 0x01;
	if (defect(D_SHORT_READ_EOF) && n > 0) {
		/* Off by one at EOF: a read that reaches the end loses its last byte. */
		struct stat st;
		if (fstat(h->fd, &st) == 0 && (off_t)ri->offset + n >= st.st_size)
			n--;
	}
	reply_buf(r, r->w->out, (size_t)n);
}

/*
 * The writer lacked CAP_FSETID (the kernel says so with FUSE_WRITE_KILL_SUIDGID on direct-io
 * writes, and on all writes under HANDLE_KILLPRIV_V2). ptfs writes the backing file with its own
 * CAP_FSETID, so the backing filesystem keeps the bits: clear them here, as a local write would.
 */
static void kill_suidgid(int fd)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return;
	mode_t mode = st.st_mode & 07777;
	mode_t keep = mode & ~(mode_t)S_ISUID;
	if ((mode & S_ISGID) && (mode & S_IXGRP))
		keep &= ~(mode_t)S_ISGID;
	if (keep != mode && fchmod(fd, keep) < 0)
		logmsg("write: clearing setuid/setgid: %s", strerror(errno));
	if (fremovexattr(fd, "security.capability") < 0 && errno != ENODATA && errno != ENOTSUP)
		logmsg("write: removing security.capability: %s", strerror(errno));
}

static void op_write(struct req *r)
{
	const struct pt_write_in *wi = (const void *)r->arg;
	if (r->arglen < sizeof(*wi) || r->arglen - sizeof(*wi) < wi->size)
		return (void)reply_err(r, EINVAL);
	struct handle *h = handle_of(wi->fh);
	ssize_t n = pwrite(h->fd, r->arg + sizeof(*wi), wi->size, (off_t)wi->offset);
	if (n < 0)
		return (void)reply_err(r, errno);
	if ((wi->write_flags & PT_WRITE_KILL_SUIDGID) && !defect(D_KILLPRIV_V2))
		kill_suidgid(h->fd);
	struct pt_write_out wo = {.size = (uint32_t)n};
	reply_buf(r, &wo, sizeof(wo));
}

static void op_statfs(struct req *r, struct inode *ino)
{
	struct statfs sf;
	if (fstatfs(ino->fd, &sf) < 0)
		return (void)reply_err(r, errno);
	struct pt_statfs_out so;
	memset(&so, 0, sizeof(so));
	so.st.blocks = sf.f_blocks;
	so.st.bfree = sf.f_bfree;
	so.st.bavail = sf.f_bavail;
	so.st.files = sf.f_files;
	so.st.ffree = sf.f_ffree;
	so.st.bsize = (uint32_t)sf.f_bsize;
	so.st.namelen = (uint32_t)sf.f_namelen;
	so.st.frsize = (uint32_t)sf.f_frsize;
	reply_buf(r, &so, sizeof(so));
}

/* RELEASE and RELEASEDIR: both carry a handle of the one table. */
static void op_release(struct req *r)
{
	const struct pt_release_in *ri = (const void *)r->arg;
	if (r->arglen < sizeof(*ri))
		return (void)reply_err(r, EINVAL);
	release_handle(handle_of(ri->fh));
	reply_err(r, 0);
}

static void op_flush(struct req *r)
{
	const struct pt_flush_in *fi = (const void *)r->arg;
	if (r->arglen < sizeof(*fi))
		return (void)reply_err(r, EINVAL);
	struct handle *h = handle_of(fi->fh);
	/* A close of a duplicate gives the backing fs its close-time semantics. */
	int d = dup(h->fd);
	if (d >= 0 && close(d) < 0)
		return (void)reply_err(r, errno);
	reply_err(r, 0);
}

static void op_fsync(struct req *r, bool dir)
{
	const struct pt_fsync_in *fi = (const void *)r->arg;
	if (r->arglen < sizeof(*fi))
		return (void)reply_err(r, EINVAL);
	struct handle *h = handle_of(fi->fh);
	int fd = dir ? dirfd(h->dp) : h->fd;
	/* The defect: a passthrough server "never wrote anything", so it answers FSYNC unsynced. */
	if (defect(D_FSYNC_NOOP) && !dir)
		return (void)reply_err(r, 0);
	int rc = (fi->fsync_flags & 1) ? fdatasync(fd) : fsync(fd);
	reply_err(r, rc < 0 ? errno : 0);
}

static void op_setxattr(struct req *r, struct inode *ino)
{
	const struct pt_setxattr_in *si = (const void *)r->arg;
	size_t next;
	const char *name = arg_string(r, sizeof(*si), &next);
	if (r->arglen < sizeof(*si) || !name || r->arglen - next < si->size)
		return (void)reply_err(r, EINVAL);
	char path[64];
	proc_path(path, sizeof(path), ino->fd);
	if (setxattr(path, name, r->arg + next, si->size, (int)si->flags) < 0)
		return (void)reply_err(r, errno);
	reply_err(r, 0);
}

static void op_getxattr(struct req *r, struct inode *ino, bool list)
{
	const struct pt_getxattr_in *gi = (const void *)r->arg;
	const char *name = list ? "" : arg_string(r, sizeof(*gi), NULL);
	if (r->arglen < sizeof(*gi) || !name)
		return (void)reply_err(r, EINVAL);
	char path[64];
	proc_path(path, sizeof(path), ino->fd);
	if (defect(D_SLOW_GETXATTR)) {
		/* slow-getxattr: 4 ms per answer. The kernel asks security.capability before each write
		 * that could remove privileges, so passthrough writes pay it once per write(2). */
		struct timespec ts = {.tv_sec = 0, .tv_nsec = 4 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	size_t size = gi->size > OUT_BUFSIZE ? OUT_BUFSIZE : gi->size;
	ssize_t n = list ? listxattr(path, size ? r->w->out : NULL, size)
			 : getxattr(path, name, size ? r->w->out : NULL, size);
	if (n < 0)
		return (void)reply_err(r, errno);
	if (gi->size == 0) {
		struct pt_getxattr_out go = {.size = (uint32_t)n};
		return (void)reply_buf(r, &go, sizeof(go));
	}
	reply_buf(r, r->w->out, (size_t)n);
}

static void op_removexattr(struct req *r, struct inode *ino)
{
	const char *name = arg_string(r, 0, NULL);
	if (!name)
		return (void)reply_err(r, EINVAL);
	char path[64];
	proc_path(path, sizeof(path), ino->fd);
	if (removexattr(path, name) < 0)
		return (void)reply_err(r, errno);
	reply_err(r, 0);
}

static void op_opendir(struct req *r, struct inode *ino)
{
	int fd = openat(ino->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return (void)reply_err(r, errno);
	DIR *dp = fdopendir(fd);
	if (!dp) {
		int e = errno;
		close(fd);
		return (void)reply_err(r, e);
	}
	struct handle *h = handle_new(ino, fd, H_DIR);
	if (!h) {
		closedir(dp);
		return (void)reply_err(r, ENOMEM);
	}
	h->dp = dp;
	struct pt_open_out oo = {.fh = (uint64_t)(uintptr_t)h};
	reply_open(r, h, &oo, sizeof(oo));
}

/*
 * readdir-drops-entry: peek past the entry just read; when nothing follows
 * and it is a name other than . or .., return false (drop it). Otherwise
 * rewind to before and read the entry again (the peek may have reused the
 * buffer it lives in), leaving it in h->pending.
 */
static bool readdir_drop_check(struct handle *h, long before)
{
	const char *name = h->pending->d_name;
	bool dot = strcmp(name, ".") == 0 || strcmp(name, "..") == 0;
	errno = 0;
	if (!dot && !readdir(h->dp) && errno == 0)
		return false;
	seekdir(h->dp, before);
	h->pending = readdir(h->dp);
	return h->pending != NULL;
}

static void op_readdir(struct req *r, struct inode *dir, bool plus)
{
	const struct pt_read_in *ri = (const void *)r->arg;
	if (r->arglen < sizeof(*ri))
		return (void)reply_err(r, EINVAL);
	struct handle *h = handle_of(ri->fh);
	size_t size = ri->size > OUT_BUFSIZE ? OUT_BUFSIZE : ri->size;
	char *out = r->w->out;
	size_t used = 0;
	int err = 0;

	pthread_mutex_lock(&h->dlock);
	if ((off_t)ri->offset != h->pos) {
		seekdir(h->dp, (long)ri->offset);
		h->pending = NULL;
		h->pos = (off_t)ri->offset;
	}
	for (;;) {
		if (!h->pending) {
			long before = defect(D_READDIR_DROPS_ENTRY) ? telldir(h->dp) : 0;
			errno = 0;
			h->pending = readdir(h->dp);
			if (!h->pending) {
				err = errno;
				break;
			}
			if (defect(D_READDIR_DROPS_ENTRY) && !readdir_drop_check(h, before)) {
				/* The last name of the listing is never emitted: the
				 * stream stays at its end, so the next READDIR is empty. */
				h->pending = NULL;
				h->pos = telldir(h->dp);
				break;
			}
		}
		struct dirent *de = h->pending;
		size_t namelen = strlen(de->d_name);
		off_t nextoff = telldir(h->dp);
		size_t entsize = plus ? PT_DIRENT_ALIGN(PT_NAME_OFFSET_PLUS + namelen)
				      : PT_DIRENT_ALIGN(PT_NAME_OFFSET + namelen);
		if (used + entsize > size)
			break;
		struct pt_dirent *d;
		if (plus) {
			struct pt_direntplus *dp = (void *)(out + used);
			memset(&dp->entry_out, 0, sizeof(dp->entry_out));
			bool dot = strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0;
			struct inode *ino;
			struct stat st;
			if (!dot && do_lookup(dir, de->d_name, &ino, &st) == 0)
				fill_entry(&dp->entry_out, ino, &st);
			else
				dp->entry_out.attr.mode = (uint32_t)de->d_type << 12;
			d = &dp->dirent;
		} else {
			d = (void *)(out + used);
		}
		d->ino = de->d_ino;
		d->off = (uint64_t)nextoff;
		d->namelen = (uint32_t)namelen;
		d->type = de->d_type;
		memcpy(d->name, de->d_name, namelen);
		size_t pad = entsize - (plus ? PT_NAME_OFFSET_PLUS : PT_NAME_OFFSET) - namelen;
		memset(d->name + namelen, 0, pad);
		used += entsize;
		h->pending = NULL;
		h->pos = nextoff;
	}
	pthread_mutex_unlock(&h->dlock);
	if (err && used == 0)
		return (void)reply_err(r, err);
	reply_buf(r, out, used);
}

static void op_fallocate(struct req *r)
{
	const struct pt_fallocate_in *fi = (const void *)r->arg;
	if (r->arglen < sizeof(*fi))
		return (void)reply_err(r, EINVAL);
	struct handle *h = handle_of(fi->fh);
	if (fallocate(h->fd, (int)fi->mode, (off_t)fi->offset, (off_t)fi->length) < 0)
		return (void)reply_err(r, errno);
	reply_err(r, 0);
}

static void op_lseek(struct req *r)
{
	const struct pt_lseek_in *li = (const void *)r->arg;
	if (r->arglen < sizeof(*li))
		return (void)reply_err(r, EINVAL);
	struct handle *h = handle_of(li->fh);
	off_t o = lseek(h->fd, (off_t)li->offset, (int)li->whence);
	if (o < 0)
		return (void)reply_err(r, errno);
	struct pt_lseek_out lo = {.offset = (uint64_t)o};
	reply_buf(r, &lo, sizeof(lo));
}

static void op_copy_file_range(struct req *r)
{
	const struct pt_copy_file_range_in *ci = (const void *)r->arg;
	if (r->arglen < sizeof(*ci))
		return (void)reply_err(r, EINVAL);
	struct handle *hin = handle_of(ci->fh_in), *hout = handle_of(ci->fh_out);
	loff_t oin = (loff_t)ci->off_in, oout = (loff_t)ci->off_out;
	size_t len = ci->len > (uint64_t)INT32_MAX ? (size_t)INT32_MAX : (size_t)ci->len;
	ssize_t n = copy_file_range(hin->fd, &oin, hout->fd, &oout, len, (unsigned)ci->flags);
	if (n < 0)
		return (void)reply_err(r, errno);
	struct pt_write_out wo = {.size = (uint32_t)n};
	reply_buf(r, &wo, sizeof(wo));
}

static void hang_forever(struct req *r)
{
	logmsg("defect hang-on: not answering %s (unique %" PRIu64 ")", opname(r->in->opcode),
	       r->in->unique);
	pthread_mutex_lock(&g.hang_lock);
	while (!g.shutting_down)
		pthread_cond_wait(&g.hang_cond, &g.hang_lock);
	pthread_mutex_unlock(&g.hang_lock);
}

/*
 * close-dev-on: take every /dev/fuse fd away (dup2 of /dev/null over them) and wake the other
 * workers out of their reads; they park instead of reading.  With the last reference to the
 * device files gone the kernel aborts the connection, while the process goes on running.
 */
static void close_dev(struct req *r)
{
	logmsg("defect close-dev-on: closing /dev/fuse on %s (unique %" PRIu64 "), staying alive",
	       opname(r->in->opcode), r->in->unique);
	atomic_store(&g.dev_closed, true);
	int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
	for (int i = 0; i < g.nworkers; i++) {
		dup2(nul, g.workers[i].fd);
		if (g.workers[i].tid != pthread_self())
			pthread_kill(g.workers[i].tid, SIGUSR1);
	}
	dup2(nul, g.devfd);
	close(nul);
	/* a thread inside read() or poll() holds the device file until it returns: wake them all,
	 * repeatedly (a signal landing just before read() is lost) */
	char c = 1;
	if (write(g.wake_pipe[1], &c, 1) < 0) {
	}
	for (int round = 0; round < 25; round++) {
		for (int i = 0; i < g.nworkers; i++)
			if (g.workers[i].tid != pthread_self())
				pthread_kill(g.workers[i].tid, SIGUSR1);
		struct timespec ts = {.tv_sec = 0, .tv_nsec = 20 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
}

static void dispatch(struct req *r)
{
	const struct pt_in_header *in = r->in;
	uint32_t op = in->opcode;
	if (cfg.debug)
		logmsg("unique %" PRIu64 ": %s nodeid %" PRIu64 " len %u pid %u", in->unique, opname(op),
		       in->nodeid, in->len, in->pid);
	if (defect(D_CRASH_ON) && op == cfg.crash_op) {
		logmsg("defect crash-on: aborting on %s", opname(op));
		abort();
	}
	if (defect(D_HANG_ON) && op == cfg.hang_op)
		return hang_forever(r);
	if (defect(D_CLOSE_DEV_ON) && op == cfg.close_dev_op)
		return close_dev(r);

	struct inode *ino = inode_of(in->nodeid);
	switch (op) {
	case PT_LOOKUP: return op_lookup(r, ino);
	case PT_FORGET: return op_forget(r, ino);
	case PT_BATCH_FORGET: return op_batch_forget(r);
	case PT_GETATTR: return op_getattr(r, ino);
	case PT_SETATTR: return op_setattr(r, ino);
	case PT_READLINK: return op_readlink(r, ino);
	case PT_SYMLINK: return op_symlink(r, ino);
	case PT_MKNOD: return op_mknod(r, ino);
	case PT_MKDIR: return op_mkdir(r, ino);
	case PT_UNLINK: return op_unlink(r, ino, false);
	case PT_RMDIR: return op_unlink(r, ino, true);
	case PT_RENAME: return op_rename(r, ino, false);
	case PT_RENAME2: return op_rename(r, ino, true);
	case PT_LINK: return op_link(r, ino);
	case PT_OPEN: return op_open(r, ino);
	case PT_CREATE: return op_create(r, ino, K_CREATE);
	case PT_TMPFILE: return op_create(r, ino, K_TMPFILE);
	case PT_READ: return op_read(r);
	case PT_WRITE: return op_write(r);
	case PT_STATFS: return op_statfs(r, ino);
	case PT_RELEASE: return op_release(r);
	case PT_FLUSH: return op_flush(r);
	case PT_FSYNC: return op_fsync(r, false);
	case PT_FSYNCDIR: return op_fsync(r, true);
	case PT_SETXATTR: return op_setxattr(r, ino);
	case PT_GETXATTR: return op_getxattr(r, ino, false);
	case PT_LISTXATTR: return op_getxattr(r, ino, true);
	case PT_REMOVEXATTR: return op_removexattr(r, ino);
	case PT_OPENDIR: return op_opendir(r, ino);
	case PT_READDIR: return op_readdir(r, ino, false);
	case PT_READDIRPLUS: return op_readdir(r, ino, true);
	case PT_RELEASEDIR: return op_release(r); /* one handle table for files and directories */
	case PT_FALLOCATE: return op_fallocate(r);
	case PT_LSEEK: return op_lseek(r);
	case PT_COPY_FILE_RANGE: return op_copy_file_range(r);
	case PT_INTERRUPT: return; /* requests finish quickly; nothing to cancel */
	case PT_NOTIFY_REPLY: return;
	case PT_DESTROY: return (void)reply_err(r, 0);
	case PT_SYNCFS: return (void)reply_err(r, 0);
	default: return (void)reply_err(r, ENOSYS);
	}
}

/* ---- workers ------------------------------------------------------------ */

static void notify_done(void)
{
	char c = 1;
	if (write(g.done_pipe[1], &c, 1) < 0) {
	}
}

static atomic_bool stopping;

static void wake_handler(int sig)
{
	(void)sig; /* only there to interrupt a blocking read */
}

/*
 * Blocking reads: the kernel wakes one reader per request (exclusive wait),
 * where poll() would wake every worker for each request.  Shutdown interrupts
 * the reads with SIGUSR1 (installed without SA_RESTART).
 */
static void *worker_main(void *arg)
{
	struct worker *w = arg;
	sigset_t usr1;
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	pthread_sigmask(SIG_UNBLOCK, &usr1, NULL);
	while (!atomic_load(&stopping)) {
		if (atomic_load(&g.dev_closed)) {
			struct timespec ts = {.tv_sec = 0, .tv_nsec = 50 * 1000 * 1000};
			nanosleep(&ts, NULL);
			continue;
		}
		ssize_t n = read(w->fd, w->buf, REQ_BUFSIZE);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN || errno == ENOENT)
				continue;
			if (errno != ENODEV)
				logmsg("read /dev/fuse: %s", strerror(errno));
			notify_done();
			break;
		}
		if ((size_t)n < sizeof(struct pt_in_header))
			continue;
		struct req r = {
			.w = w,
			.in = (const void *)w->buf,
			.arg = w->buf + sizeof(struct pt_in_header),
			.arglen = (size_t)n - sizeof(struct pt_in_header),
		};
		dispatch(&r);
	}
	atomic_store(&w->exited, true);
	return NULL;
}

/* ---- INIT, probes ------------------------------------------------------- */

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (!f || fputs(text, f) < 0 || fclose(f) != 0)
		logmsg("cannot write %s: %s", path, strerror(errno));
}

static void result_str(char *buf, size_t len, int rc)
{
	if (rc >= 0) {
		snprintf(buf, len, "id:%d", rc);
		return;
	}
	const char *n = errname(-rc);
	if (n)
		snprintf(buf, len, "%s", n);
	else
		snprintf(buf, len, "errno:%d", -rc);
}

static int backing_open_map(int fd, uint32_t flags, uint64_t padding)
{
	struct pt_backing_map map = {.fd = fd, .flags = flags, .padding = padding};
	int id = ioctl(g.devfd, PT_DEV_IOC_BACKING_OPEN, &map);
	return id < 0 ? -errno : id;
}

static void close_result(char *buf, size_t len, int rc)
{
	if (rc == 0)
		snprintf(buf, len, "ok");
	else
		result_str(buf, len, rc);
}

/* The error cases of SPEC.md section 2, run against our own connection. */
static void ioctl_selfcheck(const char *out_path)
{
	char flags_nz[32], pad_nz[32], bad_fd[32], dir[32], pipe_r[32], opath[32], regular[32];
	char c0[32], cneg[32], cunk[32], creg[32], cdbl[32], copath[32];
	int file = open(cfg.source, O_RDWR | O_TMPFILE | O_CLOEXEC, 0600);
	if (file < 0)
		file = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	result_str(flags_nz, sizeof(flags_nz), backing_open_map(file, 1, 0));
	result_str(pad_nz, sizeof(pad_nz), backing_open_map(file, 0, 1));
	int closed = dup(file);
	close(closed);
	result_str(bad_fd, sizeof(bad_fd), backing_open_map(closed, 0, 0));
	int dfd = open(cfg.source, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc = backing_open_map(dfd, 0, 0);
	result_str(dir, sizeof(dir), rc);
	if (rc > 0)
		backing_close(rc);
	close(dfd);
	int p[2] = {-1, -1};
	if (pipe(p) == 0) {
		rc = backing_open_map(p[0], 0, 0);
		result_str(pipe_r, sizeof(pipe_r), rc);
		if (rc > 0)
			backing_close(rc);
		close(p[0]);
		close(p[1]);
	} else {
		snprintf(pipe_r, sizeof(pipe_r), "skipped");
	}
	char path[64];
	proc_path(path, sizeof(path), file);
	int pfd = open(path, O_PATH | O_CLOEXEC);
	rc = backing_open_map(pfd, 0, 0);
	result_str(opath, sizeof(opath), rc);
	close_result(copath, sizeof(copath), rc > 0 ? backing_close(rc) : rc);
	close(pfd);
	int id = backing_open_map(file, 0, 0);
	result_str(regular, sizeof(regular), id);
	close(file);
	close_result(c0, sizeof(c0), backing_close(0));
	close_result(cneg, sizeof(cneg), backing_close(-1));
	close_result(cunk, sizeof(cunk), backing_close(INT32_MAX - 7));
	if (id > 0) {
		close_result(creg, sizeof(creg), backing_close(id));
		close_result(cdbl, sizeof(cdbl), backing_close(id));
	} else {
		snprintf(creg, sizeof(creg), "skipped");
		snprintf(cdbl, sizeof(cdbl), "skipped");
	}
	bool granted = id > 0 || strcmp(flags_nz, "EINVAL") == 0;
	char json[2048];
	snprintf(json, sizeof(json),
		 "{\"granted\":%s,\"flags_nonzero\":\"%s\",\"padding_nonzero\":\"%s\",\"bad_fd\":\"%s\","
		 "\"directory\":\"%s\",\"pipe\":\"%s\",\"o_path\":\"%s\",\"close_o_path\":\"%s\","
		 "\"regular\":\"%s\",\"close_regular\":\"%s\",\"double_close\":\"%s\","
		 "\"close_id0\":\"%s\",\"close_negative\":\"%s\",\"close_unknown\":\"%s\"}\n",
		 granted ? "true" : "false", flags_nz, pad_nz, bad_fd, dir, pipe_r, opath, copath, regular,
		 creg, cdbl, c0, cneg, cunk);
	write_file(out_path, json);
}

/* Read and answer INIT on the master fd.  Returns 0, or an exit code. */
static int handle_init(char *buf)
{
	ssize_t n;
	for (;;) {
		n = read(g.devfd, buf, REQ_BUFSIZE);
		if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == ENOENT))
			continue;
		break;
	}
	if (n < 0) {
		logmsg("error: reading INIT from /dev/fuse: %s", strerror(errno));
		return 1;
	}
	const struct pt_in_header *in = (const void *)buf;
	const struct pt_init_in *ii = (const void *)(buf + sizeof(*in));
	struct worker w0 = {.fd = g.devfd};
	struct req r = {.w = &w0, .in = in, .arg = (const char *)ii, .arglen = (size_t)n - sizeof(*in)};
	if ((size_t)n < sizeof(*in) + 16 || in->opcode != PT_INIT) {
		logmsg("error: first request is %s, expected INIT", opname(in->opcode));
		reply_err(&r, EIO);
		return 1;
	}
	if (ii->major != PT_KERNEL_VERSION) {
		logmsg("error: kernel speaks FUSE %u.%u, ptfs needs 7.x", ii->major, ii->minor);
		reply_err(&r, EPROTO);
		return 1;
	}
	uint64_t offered = ii->flags;
	if ((ii->flags & PT_INIT_INIT_EXT) && r.arglen >= 20)
		offered |= (uint64_t)ii->flags2 << 32;
	g.offered = offered;
	bool pt_offered = (offered & PT_INIT_PASSTHROUGH) != 0;

	uint64_t want = PT_INIT_ASYNC_READ | PT_INIT_BIG_WRITES | PT_INIT_MAX_PAGES | PT_INIT_PARALLEL_DIROPS |
			PT_INIT_AUTO_INVAL_DATA | PT_INIT_DO_READDIRPLUS | PT_INIT_READDIRPLUS_AUTO |
			PT_INIT_INIT_EXT;
	if (!cfg.no_passthrough)
		want |= PT_INIT_PASSTHROUGH;
	if (cfg.writeback || defect(D_WRITEBACK_WITH_PT))
		want |= PT_INIT_WRITEBACK_CACHE;
	/* killpriv-v2: takes over clearing setuid/setgid on writes (it saves the kernel's
	 * GETXATTR security.capability per write) and then never does it; with passthrough
	 * the server never even sees the writes it took the job for. */
	if (defect(D_KILLPRIV_V2))
		want |= PT_INIT_HANDLE_KILLPRIV_V2;
	uint64_t reply = want & offered;
	uint32_t depth = (reply & PT_INIT_PASSTHROUGH) ? cfg.max_stack_depth : 0;
	if (defect(D_BAD_STACK_DEPTH) && (reply & PT_INIT_PASSTHROUGH))
		depth = 0;
	g.replied = reply;
	g.pt_negotiated = (reply & PT_INIT_PASSTHROUGH) != 0;

	struct pt_init_out io;
	memset(&io, 0, sizeof(io));
	io.major = PT_KERNEL_VERSION;
	io.minor = PT_KERNEL_MINOR;
	io.max_readahead = ii->max_readahead;
	io.flags = (uint32_t)reply;
	io.flags2 = (uint32_t)(reply >> 32);
	io.max_background = 64;
	io.congestion_threshold = 48;
	io.max_write = MAX_WRITE;
	io.time_gran = 1;
	io.max_pages = MAX_PAGES;
	io.max_stack_depth = depth;

	if (cfg.init_report_path) {
		char json[1024];
		snprintf(json, sizeof(json),
			 "{\"major\":%u,\"minor\":%u,\"max_readahead\":%u,\"flags\":\"0x%x\",\"flags2\":\"0x%x\","
			 "\"passthrough_offered\":%s,\"reply_minor\":%u,\"reply_flags\":\"0x%x\","
			 "\"reply_flags2\":\"0x%x\",\"max_stack_depth\":%u,\"passthrough_requested\":%s,"
			 "\"writeback_cache\":%s}\n",
			 ii->major, ii->minor, ii->max_readahead, (uint32_t)offered, (uint32_t)(offered >> 32),
			 pt_offered ? "true" : "false", io.minor, io.flags, io.flags2, depth,
			 g.pt_negotiated ? "true" : "false",
			 (reply & PT_INIT_WRITEBACK_CACHE) ? "true" : "false");
		write_file(cfg.init_report_path, json);
	}
	if (!cfg.no_passthrough && !pt_offered) {
		logmsg("error: the kernel does not offer FUSE_PASSTHROUGH (FUSE %u.%u); use --no-passthrough",
		       ii->major, ii->minor);
		reply_err(&r, EPROTO);
		return 2;
	}
	if (reply_buf(&r, &io, sizeof(io)) < 0) {
		logmsg("error: INIT reply failed");
		return 1;
	}
	if (cfg.selfcheck_path)
		ioctl_selfcheck(cfg.selfcheck_path);
	return 0;
}

/* ---- command line ------------------------------------------------------- */

static void usage(FILE *f)
{
	fputs("usage: ptfs --source DIR --mountpoint DIR [options]\n"
	      "  --threads N              worker threads reading /dev/fuse (default 4)\n"
	      "  --attr-timeout SEC       entry and attribute timeout (default 1, may be 0)\n"
	      "  --no-passthrough         never request FUSE_PASSTHROUGH\n"
	      "  --no-allow-other         mount without allow_other (only root may enter)\n"
	      "  --max-stack-depth N      max_stack_depth in the INIT reply (default 1)\n"
	      "  --writeback-cache        also request FUSE_WRITEBACK_CACHE (kernel then refuses passthrough)\n"
	      "  --io-policy P            passthrough|cached|direct|passthrough-direct|by-access|passthrough-reads\n"
	      "  --backing-ids W          until-release (default: closed at the inode's last release)\n"
	      "                           or until-forget (kept until the kernel forgets the inode)\n"
	      "  --open-flags-extra HEX   OR these FOPEN_* bits into every open reply\n"
	      "  --ioctl-selfcheck FILE   run the backing ioctl error cases after INIT, write JSON\n"
	      "  --init-report FILE       write what the kernel offered in INIT as JSON\n"
	      "  --defect NAME            inject a server bug (repeatable; hang-on/crash-on take an OPCODE)\n"
	      "  --debug                  log requests to stderr\n"
	      "  --version, --help\n",
	      f);
}

static void list_defects_error(const char *name)
{
	fprintf(stderr, "ptfs: error: unknown defect '%s'; valid:", name);
	for (int i = 0; i < D_COUNT; i++)
		fprintf(stderr, " %s%s", defect_names[i], takes_opcode(i) ? " OPCODE" : "");
	fputc('\n', stderr);
	exit(2);
}

static unsigned long parse_num(const char *opt, const char *s, int base, unsigned long max)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, base);
	if (!*s || *end || errno || v > max || s[0] == '-')
		usage_error("invalid value '%s' for %s", s, opt);
	return v;
}

static void parse_args(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *val = NULL;
		bool takes = strcmp(a, "--source") == 0 || strcmp(a, "--mountpoint") == 0 ||
			     strcmp(a, "--threads") == 0 || strcmp(a, "--attr-timeout") == 0 ||
			     strcmp(a, "--max-stack-depth") == 0 || strcmp(a, "--io-policy") == 0 ||
			     strcmp(a, "--open-flags-extra") == 0 || strcmp(a, "--ioctl-selfcheck") == 0 ||
			     strcmp(a, "--init-report") == 0 || strcmp(a, "--defect") == 0 ||
			     strcmp(a, "--backing-ids") == 0;
		if (takes) {
			if (i + 1 >= argc)
				usage_error("option %s needs a value", a);
			val = argv[++i];
		}
		if (strcmp(a, "--version") == 0) {
			puts("ptfs " PTFS_VERSION);
			exit(0);
		} else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage(stdout);
			exit(0);
		} else if (strcmp(a, "--source") == 0) {
			cfg.source = val;
		} else if (strcmp(a, "--mountpoint") == 0) {
			cfg.mountpoint = val;
		} else if (strcmp(a, "--threads") == 0) {
			cfg.threads = (int)parse_num(a, val, 10, 256);
			if (cfg.threads < 1)
				usage_error("--threads must be at least 1");
		} else if (strcmp(a, "--attr-timeout") == 0) {
			char *end;
			double t = strtod(val, &end);
			if (!*val || *end || !(t >= 0) || t > 1e9)
				usage_error("invalid value '%s' for --attr-timeout", val);
			cfg.timeout_sec = (uint64_t)t;
			cfg.timeout_nsec = (uint32_t)((t - (double)cfg.timeout_sec) * 1e9);
		} else if (strcmp(a, "--no-passthrough") == 0) {
			cfg.no_passthrough = true;
		} else if (strcmp(a, "--no-allow-other") == 0) {
			cfg.no_allow_other = true;
		} else if (strcmp(a, "--max-stack-depth") == 0) {
			cfg.max_stack_depth = (uint32_t)parse_num(a, val, 10, UINT32_MAX);
		} else if (strcmp(a, "--writeback-cache") == 0) {
			cfg.writeback = true;
		} else if (strcmp(a, "--io-policy") == 0) {
			if (strcmp(val, "passthrough") == 0)
				cfg.policy = POL_PASSTHROUGH;
			else if (strcmp(val, "cached") == 0)
				cfg.policy = POL_CACHED;
			else if (strcmp(val, "direct") == 0)
				cfg.policy = POL_DIRECT;
			else if (strcmp(val, "passthrough-direct") == 0)
				cfg.policy = POL_PT_DIRECT;
			else if (strcmp(val, "by-access") == 0)
				cfg.policy = POL_BY_ACCESS;
			else if (strcmp(val, "passthrough-reads") == 0)
				cfg.policy = POL_PT_READS;
			else
				usage_error("unknown --io-policy '%s' (passthrough|cached|direct|passthrough-direct|by-access|passthrough-reads)",
					    val);
		} else if (strcmp(a, "--backing-ids") == 0) {
			if (strcmp(val, "until-release") == 0)
				cfg.ids_until_forget = false;
			else if (strcmp(val, "until-forget") == 0)
				cfg.ids_until_forget = true;
			else
				usage_error("unknown --backing-ids '%s' (until-release|until-forget)", val);
		} else if (strcmp(a, "--open-flags-extra") == 0) {
			cfg.open_flags_extra = (uint32_t)parse_num(a, val, 16, UINT32_MAX);
		} else if (strcmp(a, "--ioctl-selfcheck") == 0) {
			cfg.selfcheck_path = val;
		} else if (strcmp(a, "--init-report") == 0) {
			cfg.init_report_path = val;
		} else if (strcmp(a, "--debug") == 0) {
			cfg.debug = true;
		} else if (strcmp(a, "--defect") == 0) {
			int d = -1;
			for (int k = 0; k < D_COUNT; k++)
				if (strcmp(val, defect_names[k]) == 0)
					d = k;
			if (d < 0)
				list_defects_error(val);
			cfg.defects |= 1ULL << d;
			if (takes_opcode(d)) {
				if (i + 1 >= argc)
					usage_error("--defect %s needs an OPCODE", val);
				uint32_t op = parse_opcode(argv[++i]);
				if (d == D_HANG_ON)
					cfg.hang_op = op;
				else if (d == D_CRASH_ON)
					cfg.crash_op = op;
				else if (d == D_CLOSE_DEV_ON)
					cfg.close_dev_op = op;
				else
					cfg.malformed_op = op;
			}
		} else {
			usage_error("unknown option '%s' (see --help)", a);
		}
	}
	if (!cfg.source)
		usage_error("--source is required");
	if (!cfg.mountpoint)
		usage_error("--mountpoint is required");
}

static void check_dirs(struct stat *src_st)
{
	if (stat(cfg.source, src_st) < 0)
		usage_error("source %s: %s", cfg.source, strerror(errno));
	if (!S_ISDIR(src_st->st_mode))
		usage_error("source %s is not a directory", cfg.source);
	DIR *d = opendir(cfg.mountpoint);
	if (!d)
		usage_error("mountpoint %s: %s", cfg.mountpoint, strerror(errno));
	struct dirent *de;
	bool empty = true;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			empty = false;
	closedir(d);
	if (!empty)
		usage_error("mountpoint %s is not empty", cfg.mountpoint);
}

/* ---- main --------------------------------------------------------------- */

static void free_all(void)
{
	while (g.handles.next != &g.handles) {
		struct handle *h = g.handles.next;
		handle_unlink(h);
		if (h->kind == H_PT && h->own_backing_id > 0)
			h->own_backing_id = 0;
		handle_destroy(h);
	}
	for (size_t b = 0; b < NBUCKETS; b++) {
		struct inode *p = g.buckets[b];
		while (p) {
			struct inode *next = p->hnext;
			if (p != &g.root)
				inode_free(p);
			p = next;
		}
	}
	free(g.buckets);
	close(g.root.fd);
	pthread_mutex_destroy(&g.root.lock);
}

int main(int argc, char **argv)
{
	parse_args(argc, argv);
	struct stat src_st;
	check_dirs(&src_st);

	int rootfd = open(cfg.source, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		usage_error("source %s: %s", cfg.source, strerror(errno));
	g.devfd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	if (g.devfd < 0)
		usage_error("cannot open /dev/fuse: %s", strerror(errno));

	umask(0);
	signal(SIGPIPE, SIG_IGN);
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	int sfd = signalfd(-1, &sigs, SFD_CLOEXEC);
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = wake_handler; /* no SA_RESTART: read() returns EINTR */
	sigaction(SIGUSR1, &sa, NULL);
	sigaddset(&sigs, SIGUSR1); /* blocked everywhere except inside workers */
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	sigdelset(&sigs, SIGUSR1);
	if (sfd < 0 || pipe2(g.done_pipe, O_CLOEXEC) < 0 || pipe2(g.wake_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
		usage_error("cannot set up signals: %s", strerror(errno));

	if (defect(D_MOUNT_ELSEWHERE)) {
		/* the bug: a mountpoint computed from the wrong argument (the parent of the one given) */
		static char other[PATH_MAX];
		char *copy = strdup(cfg.mountpoint);
		char *slash = strrchr(copy, '/');
		if (slash)
			*slash = 0;
		snprintf(other, sizeof(other), "%s/elsewhere", slash && *copy ? copy : ".");
		free(copy);
		mkdir(other, 0700);
		logmsg("defect mount-elsewhere: mounting at %s instead of %s", other, cfg.mountpoint);
		cfg.mountpoint = other;
	}
	char opts[256];
	snprintf(opts, sizeof(opts), "fd=%d,rootmode=%o,user_id=0,group_id=0,default_permissions%s", g.devfd,
		 src_st.st_mode & S_IFMT, cfg.no_allow_other ? "" : ",allow_other");
	if (mount("ptfs", cfg.mountpoint, "fuse.ptfs", MS_NOSUID | MS_NODEV, opts) < 0)
		usage_error("mount %s: %s", cfg.mountpoint, strerror(errno));

	g.buckets = calloc(NBUCKETS, sizeof(*g.buckets));
	g.handles.next = g.handles.prev = &g.handles;
	inode_init_common(&g.root, rootfd, &src_st);
	g.root.nlookup = 1;
	g.buckets[bucket_of(src_st.st_dev, src_st.st_ino)] = &g.root;

	if (defect(D_FORK_CHILDREN)) {
		/* helpers that detach into their own session, ignore SIGTERM and outlive the server */
		for (int k = 0; k < 2; k++) {
			pid_t c = fork();
			if (c == 0) {
				for (int fd = 3; fd < 1024; fd++)
					close(fd);
				setsid();
				signal(SIGTERM, SIG_IGN);
				signal(SIGINT, SIG_IGN);
				signal(SIGHUP, SIG_IGN);
				sigset_t none;
				sigemptyset(&none);
				sigprocmask(SIG_SETMASK, &none, NULL);
				for (;;)
					pause();
			}
			if (c > 0)
				logmsg("defect fork-children: forked helper %d, never reaped or stopped", (int)c);
		}
	}

	char *initbuf = malloc(REQ_BUFSIZE);
	int rc = initbuf ? handle_init(initbuf) : 1;
	free(initbuf);
	if (rc != 0) {
		umount2(cfg.mountpoint, MNT_DETACH);
		close(g.devfd);
		free_all();
		return rc;
	}

	int nworkers = cfg.threads;
	struct worker *ws = calloc((size_t)nworkers, sizeof(*ws));
	g.workers = ws;
	int started = 0;
	for (int i = 0; i < nworkers; i++) {
		struct worker *w = &ws[i];
		if (i == 0) {
			w->fd = g.devfd;
		} else {
			w->fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
			uint32_t master = (uint32_t)g.devfd;
			if (w->fd < 0 || ioctl(w->fd, PT_DEV_IOC_CLONE, &master) < 0) {
				logmsg("FUSE_DEV_IOC_CLONE failed: %s; using %d threads", strerror(errno), i);
				if (w->fd >= 0)
					close(w->fd);
				break;
			}
			w->own_fd = true;
		}
		w->buf = malloc(REQ_BUFSIZE);
		w->out = malloc(OUT_BUFSIZE);
		if (!w->buf || !w->out || pthread_create(&w->tid, NULL, worker_main, w) != 0) {
			logmsg("cannot start worker %d", i);
			free(w->buf);
			free(w->out);
			if (w->own_fd)
				close(w->fd);
			break;
		}
		started++;
		g.nworkers = started;
	}

	bool by_signal = false;
	/* The device fd with no events still reports POLLERR once the connection
	 * is aborted, even if every worker is stuck (hang-on). */
	struct pollfd pfd[4] = {{.fd = sfd, .events = POLLIN},
				{.fd = g.done_pipe[0], .events = POLLIN},
				{.fd = g.devfd, .events = 0},
				{.fd = g.wake_pipe[0], .events = POLLIN}};
	while (started > 0) {
		if (poll(pfd, 4, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[0].revents) {
			struct signalfd_siginfo si;
			ssize_t got = read(sfd, &si, sizeof(si));
			if (got > 0 && defect(D_IGNORE_SIGTERM) &&
			    (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT)) {
				logmsg("defect ignore-sigterm: ignoring signal %u", si.ssi_signo);
				continue;
			}
			if (got > 0)
				by_signal = true;
			break;
		}
		if (pfd[3].revents) {
			char buf[16];
			while (read(g.wake_pipe[0], buf, sizeof(buf)) > 0) {
			}
			pfd[2].fd = -1; /* the device is gone (close-dev-on): stop watching it */
			continue;
		}
		if (pfd[1].revents || (pfd[2].revents & (POLLERR | POLLHUP | POLLNVAL)))
			break;
	}
	if (by_signal || started == 0) {
		if (umount2(cfg.mountpoint, MNT_DETACH) < 0 && errno != EINVAL)
			logmsg("umount %s: %s", cfg.mountpoint, strerror(errno));
	}
	pthread_mutex_lock(&g.hang_lock);
	g.shutting_down = true;
	pthread_cond_broadcast(&g.hang_cond);
	pthread_mutex_unlock(&g.hang_lock);
	atomic_store(&stopping, true);
	for (int i = 0; i < started; i++) {
		/* Repeat the wake-up: a signal landing just before read() is lost. */
		while (!atomic_load(&ws[i].exited)) {
			pthread_kill(ws[i].tid, SIGUSR1);
			struct timespec ts = {.tv_sec = 0, .tv_nsec = 20 * 1000 * 1000};
			nanosleep(&ts, NULL);
		}
		pthread_join(ws[i].tid, NULL);
		free(ws[i].buf);
		free(ws[i].out);
		if (ws[i].own_fd)
			close(ws[i].fd);
	}
	free(ws);
	close(g.devfd);
	free_all();
	close(sfd);
	close(g.done_pipe[0]);
	close(g.done_pipe[1]);
	close(g.wake_pipe[0]);
	close(g.wake_pipe[1]);
	return 0;
}
