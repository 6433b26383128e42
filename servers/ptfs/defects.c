/* ptfs defects: the table, and the hooks the server calls (defects.h says when). */
#include "defects.h"
#include "inodes.h"
#include "iomode.h"
#include "proto.h"

#define H(x) (1u << HOOK_##x)

const struct defect_def defect_table[D_COUNT] = {
	[D_LEAK_BACKING_ID] = {"leak-backing-id", NO_OPCODE,
			       "never BACKING_CLOSE: each open/close cycle leaks a backing id", H(LAST_PT_RELEASE)},
	[D_BACKING_ID_PER_OPEN] = {"backing-id-per-open", NO_OPCODE,
				   "a fresh BACKING_OPEN per open, closed at its release: 2nd concurrent open EIO",
				   H(BACKING_WANTED) | H(PT_RELEASE)},
	[D_KEEP_CACHE_WITH_PT] = {"keep-cache-with-passthrough", NO_OPCODE,
				  "FOPEN_KEEP_CACHE with FOPEN_PASSTHROUGH: every passthrough open EIO", H(OPEN_POLICY)},
	[D_MIXED_MODES] = {"mixed-modes", NO_OPCODE,
			   "read-only opens cached, others passthrough: conflicting opens EIO", H(OPEN_POLICY)},
	[D_STALE_ATTRS] = {"stale-attrs", NO_OPCODE,
			   "GETATTR answered from a cache refreshed only by LOOKUP/SETATTR/CREATE",
			   H(STAT) | H(GETATTR)},
	[D_WRITEBACK_WITH_PT] = {"writeback-with-passthrough", NO_OPCODE,
				 "requests WRITEBACK_CACHE+PASSTHROUGH, ignores the EPERM, fails opens EIO",
				 H(INIT_FLAGS) | H(BACKING_FAILED)},
	[D_NO_PT_OPEN] = {"no-passthrough-open", NO_OPCODE,
			  "negotiates passthrough, answers every open cached", H(OPEN_POLICY)},
	[D_BAD_STACK_DEPTH] = {"bad-stack-depth", NO_OPCODE,
			       "max_stack_depth 0 with FUSE_PASSTHROUGH: not granted, opens fail EIO",
			       H(INIT_DEPTH) | H(BACKING_FAILED)},
	[D_NO_FALLBACK] = {"no-fallback", NO_OPCODE, "a refused BACKING_OPEN fails the open with its errno (ELOOP)",
			   H(BACKING_FAILED)},
	[D_GLOBAL_DISABLE] = {"global-disable-on-failure", NO_OPCODE,
			      "one refused BACKING_OPEN turns passthrough off mount-wide",
			      H(OPEN_POLICY) | H(BACKING_FAILED)},
	[D_DOUBLE_CLOSE] = {"double-close", NO_OPCODE, "BACKING_CLOSE twice on the last release (the second ENOENT)",
			    H(BACKING_CLOSED)},
	[D_CLOSE_BEFORE_REPLY] = {"close-before-reply", NO_OPCODE,
				  "BACKING_CLOSE right after BACKING_OPEN, before the reply: open EIO",
				  H(BACKING_OPENED)},
	[D_CORRUPT_READ] = {"corrupt-read", NO_OPCODE, "server-side READ replies have their first byte XOR 0x01",
			    H(READ)},
	[D_IGNORE_TRUNCATE] = {"ignore-truncate", NO_OPCODE, "SETATTR size replies success without truncating",
			       H(TRUNCATE)},
	[D_HANG_ON] = {"hang-on", OPCODE_HANG, "never replies to OPCODE", H(REQUEST) | H(SHUTDOWN)},
	[D_CRASH_ON] = {"crash-on", OPCODE_CRASH, "abort() on OPCODE", H(REQUEST)},
	[D_FD_LEAK] = {"fd-leak", NO_OPCODE, "one extra fd leaked per OPEN/CREATE", H(OPEN_REPLY)},
	[D_NO_CREATE_PT] = {"no-create-passthrough", NO_OPCODE, "CREATE replies are never passthrough",
			    H(OPEN_POLICY)},
	[D_NO_TMPFILE_PT] = {"no-tmpfile-passthrough", NO_OPCODE, "TMPFILE (O_TMPFILE) replies are never passthrough",
			     H(OPEN_POLICY)},
	[D_DIRECT_IO_FOR_O_DIRECT] = {"direct-io-for-o-direct", NO_OPCODE,
				      "O_DIRECT opens answered FOPEN_DIRECT_IO without passthrough (no io mode)",
				      H(IO_MODE)},
	[D_FSYNC_NOOP] = {"fsync-noop", NO_OPCODE, "FSYNC of a file answered 0 without syncing", H(FSYNC)},
	[D_READ_ONLY_SERVER_FD] = {"read-only-server-fd", NO_OPCODE,
				   "the server's own fd of an open is read-only: EIO instead of EROFS",
				   H(SERVER_OPEN) | H(OPEN_SERVED)},
	[D_LEAK_INODES] = {"leak-inodes", NO_OPCODE, "FORGET never frees an inode (O_PATH fds, unlinked files)",
			   H(INODE_UNUSED)},
	[D_IGNORE_SIGTERM] = {"ignore-sigterm", NO_OPCODE, "SIGTERM/SIGINT are read and ignored (SIGHUP still stops)",
			      H(SIGNAL)},
	[D_NO_EXEC_BITS] = {"no-exec-bits", NO_OPCODE, "attributes of regular files lose their execute bits",
			    H(ATTR)},
	[D_READDIR_DROPS_ENTRY] = {"readdir-drops-entry", NO_OPCODE,
				   "READDIR/READDIRPLUS never emit the last name of a directory", H(DIRENT)},
	[D_SHORT_READ_EOF] = {"short-read-eof", NO_OPCODE, "a server-side READ reaching EOF returns one byte too few",
			      H(READ)},
	[D_KILLPRIV_V2] = {"killpriv-v2", NO_OPCODE,
			   "negotiates FUSE_HANDLE_KILLPRIV_V2 and never clears setuid/setgid on writes",
			   H(INIT_FLAGS) | H(KILL_SUIDGID)},
	[D_REPLY_WRONG_UNIQUE] = {"reply-wrong-unique", OPCODE_REPLY, "replies to OPCODE carry a unique no request has",
				  H(REPLY)},
	[D_REPLY_SHORT] = {"reply-short", OPCODE_REPLY, "replies to OPCODE carry half their body", H(REPLY)},
	[D_REPLY_OVERSIZED] = {"reply-oversized", OPCODE_REPLY, "replies to OPCODE carry 64 bytes too many",
			       H(REPLY)},
	[D_REPLY_BAD_ERROR] = {"reply-bad-error", OPCODE_REPLY, "replies to OPCODE carry error -1000", H(REPLY)},
	[D_CLOSE_DEV_ON] = {"close-dev-on", OPCODE_CLOSE_DEV,
			    "on OPCODE every /dev/fuse fd becomes /dev/null, the process stays",
			    H(REQUEST) | H(READ_DEVICE)},
	[D_FORK_CHILDREN] = {"fork-children", NO_OPCODE, "forks two helpers that ignore SIGTERM and never exit",
			     H(AFTER_MOUNT)},
	[D_MOUNT_ELSEWHERE] = {"mount-elsewhere", NO_OPCODE, "mounts at dirname(mountpoint)/elsewhere", H(MOUNT)},
	[D_SLOW_GETXATTR] = {"slow-getxattr", NO_OPCODE, "answers every GETXATTR 4 ms late", H(GETXATTR)},
	[D_IO_URING_NEVER_ASKED] = {"io-uring-never-asked", NO_OPCODE,
				    "--io-uring sets its rings up but INIT never asks for FUSE_OVER_IO_URING: /dev/fuse serves",
				    H(INIT_FLAGS)},
	[D_STALE_ATIME] = {"stale-atime", NO_OPCODE,
			   "GETATTR keeps the atime of the last LOOKUP/SETATTR/CREATE (reads it never sees)",
			   H(STAT) | H(GETATTR_REPLY)},
	[D_NO_OPEN] = {"no-open", NO_OPCODE,
		       "OPEN answered ENOSYS (libfuse's no-open support): the kernel sets no_open, I/O with fh 0",
		       H(REQUEST)},
	[D_LEAK_FDS_TO_CHILD] = {"leak-fds-to-child", NO_OPCODE,
				 "OPEN fds lack O_CLOEXEC; each OPEN spawns a helper that inherits them and outlives ptfs",
				 H(SERVER_OPEN) | H(OPEN_REPLY)},
};

/* ---- what is enabled ------------------------------------------------------ */

static uint64_t enabled;       /* 1 << d */
static unsigned armed;         /* the hooks of the enabled defects */
static uint32_t opcodes[OPCODE_SLOTS];

static inline bool on(enum defect d)
{
	return (enabled >> d) & 1;
}

/* A hook returns at once unless an enabled defect acts at it. */
static inline bool armed_at(enum defect_hook hk)
{
	return (armed >> hk) & 1;
}

/* d is enabled and the request is for its OPCODE. */
static inline bool on_op(enum defect d, uint32_t op)
{
	return on(d) && op == opcodes[defect_table[d].opcode];
}

int defect_lookup(const char *name)
{
	int d = -1;
	for (int k = 0; k < D_COUNT; k++)
		if (strcmp(name, defect_table[k].name) == 0)
			d = k;
	return d;
}

void defect_enable(enum defect d, uint32_t opcode)
{
	enabled |= 1ULL << d;
	armed |= defect_table[d].hooks;
	if (defect_table[d].opcode != NO_OPCODE)
		opcodes[defect_table[d].opcode] = opcode;
}

void defect_unknown(const char *name)
{
	fprintf(stderr, "ptfs: error: unknown defect '%s'; valid:", name);
	for (int i = 0; i < D_COUNT; i++)
		fprintf(stderr, " %s%s", defect_table[i].name, defect_table[i].opcode != NO_OPCODE ? " OPCODE" : "");
	fputc('\n', stderr);
	exit(2);
}

void defect_usage(FILE *f)
{
	fputs("defects (--defect NAME):\n", f);
	for (int i = 0; i < D_COUNT; i++) {
		char name[64];
		snprintf(name, sizeof(name), "%s%s", defect_table[i].name,
			 defect_table[i].opcode != NO_OPCODE ? " OPCODE" : "");
		fprintf(f, "  %-32s %s\n", name, defect_table[i].help);
	}
}

/* ---- start-up and shutdown ------------------------------------------------ */

const char *defect_on_mount(const char *mountpoint)
{
	if (!armed_at(HOOK_MOUNT))
		return mountpoint;
	/* mount-elsewhere: a mountpoint computed from the wrong argument (the parent of the one given) */
	static char other[PATH_MAX];
	char *copy = strdup(mountpoint);
	char *slash = strrchr(copy, '/');
	if (slash)
		*slash = 0;
	snprintf(other, sizeof(other), "%s/elsewhere", slash && *copy ? copy : ".");
	free(copy);
	mkdir(other, 0700);
	logmsg("defect mount-elsewhere: mounting at %s instead of %s", other, mountpoint);
	return other;
}

/* A forked helper's life: every signal unblocked (the server's workers block them), then waiting. */
static void __attribute__((noreturn)) park_forever(void)
{
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (;;)
		pause();
}

void defect_after_mount(void)
{
	if (!armed_at(HOOK_AFTER_MOUNT))
		return;
	/* fork-children: helpers that detach into their own session, ignore SIGTERM and outlive the server */
	for (int k = 0; k < 2; k++) {
		pid_t c = fork();
		if (c == 0) {
			for (int fd = 3; fd < 1024; fd++)
				close(fd);
			setsid();
			signal(SIGTERM, SIG_IGN);
			signal(SIGINT, SIG_IGN);
			signal(SIGHUP, SIG_IGN);
			park_forever();
		}
		if (c > 0)
			logmsg("defect fork-children: forked helper %d, never reaped or stopped", (int)c);
	}
}

uint64_t defect_on_init_flags(uint64_t want)
{
	if (!armed_at(HOOK_INIT_FLAGS))
		return want;
	if (on(D_WRITEBACK_WITH_PT))
		want |= PT_INIT_WRITEBACK_CACHE;
	/* killpriv-v2: takes over clearing setuid/setgid on writes (it saves the kernel's
	 * GETXATTR security.capability per write) and then never does it; with passthrough
	 * the server never even sees the writes it took the job for. */
	if (on(D_KILLPRIV_V2))
		want |= PT_INIT_HANDLE_KILLPRIV_V2;
	/* io-uring-never-asked: the transport a server claims, silently not the one it serves
	 * (what libfuse's -o io_uring does when the kernel does not offer it) */
	if (on(D_IO_URING_NEVER_ASKED))
		want &= ~PT_INIT_OVER_IO_URING;
	return want;
}

uint32_t defect_on_init_depth(uint64_t reply, uint32_t depth)
{
	if (armed_at(HOOK_INIT_DEPTH) && on(D_BAD_STACK_DEPTH) && (reply & PT_INIT_PASSTHROUGH))
		return 0;
	return depth;
}

bool defect_on_signal(uint32_t signo)
{
	if (!armed_at(HOOK_SIGNAL) || (signo != SIGTERM && signo != SIGINT))
		return false;
	logmsg("defect ignore-sigterm: ignoring signal %u", signo);
	return true;
}

/* hang-on: the workers that never answer wait here until shutdown */
static pthread_mutex_t hang_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hang_cond = PTHREAD_COND_INITIALIZER;
static bool shutting_down;

void defect_on_shutdown(void)
{
	/* not armed_at: cheap, and then shutdown never depends on the table being right */
	pthread_mutex_lock(&hang_lock);
	shutting_down = true;
	pthread_cond_broadcast(&hang_cond);
	pthread_mutex_unlock(&hang_lock);
}

/* ---- the protocol --------------------------------------------------------- */

static atomic_bool dev_closed; /* close-dev-on happened */

bool defect_before_read_device(void)
{
	if (!armed_at(HOOK_READ_DEVICE) || !atomic_load(&dev_closed))
		return false;
	struct timespec ts = {.tv_sec = 0, .tv_nsec = 50 * 1000 * 1000};
	nanosleep(&ts, NULL);
	return true;
}

static void hang_forever(struct req *r)
{
	logmsg("defect hang-on: not answering %s (unique %" PRIu64 ")", opname(r->in->opcode),
	       r->in->unique);
	pthread_mutex_lock(&hang_lock);
	while (!shutting_down)
		pthread_cond_wait(&hang_cond, &hang_lock);
	pthread_mutex_unlock(&hang_lock);
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
	atomic_store(&dev_closed, true);
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

/*
 * no-open: a server without an open handler that tells libfuse it supports no-open answers OPEN
 * with ENOSYS. The kernel then sets no_open for the connection: it sends no OPEN again, every open
 * succeeds at once with no io mode (so none can be passthrough), and reads, writes, flushes and
 * fsyncs name fh 0. Those are served here from the inode's file.
 */
static int inode_file(const struct req *r, int flags)
{
	char path[64];
	proc_path(path, sizeof(path), inode_of(r->in->nodeid)->fd);
	return open(path, flags | O_CLOEXEC);
}

static bool no_open_request(struct req *r)
{
	uint32_t op = r->in->opcode;
	if (op == PT_OPEN) {
		reply_err(r, ENOSYS);
		return true;
	}
	if (op != PT_READ && op != PT_WRITE && op != PT_FLUSH && op != PT_FSYNC && op != PT_RELEASE)
		return false;
	/* every one of these starts with the fh */
	if (r->arglen < sizeof(uint64_t) || *(const uint64_t *)r->arg != 0)
		return false;
	if (op == PT_FLUSH || op == PT_RELEASE) {
		reply_err(r, 0);
		return true;
	}
	int fd = inode_file(r, op == PT_READ ? O_RDONLY : O_WRONLY);
	if (fd < 0) {
		reply_err(r, errno);
		return true;
	}
	if (op == PT_READ && r->arglen >= sizeof(struct pt_read_in)) {
		const struct pt_read_in *ri = (const void *)r->arg;
		size_t size = ri->size > OUT_BUFSIZE ? OUT_BUFSIZE : ri->size;
		ssize_t n = pread(fd, r->out, size, (off_t)ri->offset);
		if (n < 0)
			reply_err(r, errno);
		else
			reply_buf(r, r->out, (size_t)n);
	} else if (op == PT_WRITE && r->arglen >= sizeof(struct pt_write_in)) {
		const struct pt_write_in *wi = (const void *)r->arg;
		ssize_t n = r->arglen - sizeof(*wi) < wi->size ? -1 : pwrite(fd, r->arg + sizeof(*wi), wi->size, (off_t)wi->offset);
		struct pt_write_out wo = {.size = (uint32_t)n};
		if (n < 0)
			reply_err(r, errno ? errno : EINVAL);
		else
			reply_buf(r, &wo, sizeof(wo));
	} else if (op == PT_FSYNC) {
		reply_err(r, fsync(fd) < 0 ? errno : 0);
	} else {
		reply_err(r, EINVAL);
	}
	close(fd);
	return true;
}

bool defect_on_request(struct req *r)
{
	if (!armed_at(HOOK_REQUEST))
		return false;
	uint32_t op = r->in->opcode;
	if (on(D_NO_OPEN) && no_open_request(r))
		return true;
	if (on_op(D_CRASH_ON, op)) {
		logmsg("defect crash-on: aborting on %s", opname(op));
		abort();
	}
	if (on_op(D_HANG_ON, op)) {
		hang_forever(r);
		return true;
	}
	if (on_op(D_CLOSE_DEV_ON, op)) {
		close_dev(r);
		return true;
	}
	return false;
}

bool defect_on_reply(const struct pt_in_header *in, int err, struct pt_out_header *oh, struct iovec *v, int *cnt,
		     size_t *len)
{
	if (!armed_at(HOOK_REPLY) || in->opcode != opcodes[OPCODE_REPLY])
		return false;
	static char junk[64];
	if (on(D_REPLY_WRONG_UNIQUE)) {
		oh->unique = in->unique + 1000000007ULL;
		logmsg("defect reply-wrong-unique: answering %s (unique %" PRIu64 ") as unique %" PRIu64,
		       opname(in->opcode), in->unique, oh->unique);
	} else if (on(D_REPLY_BAD_ERROR)) {
		oh->error = -1000; /* outside (-512, 0]: the kernel refuses the reply */
		*cnt = 0;
		*len = oh->len = sizeof(*oh);
		logmsg("defect reply-bad-error: answering %s with error -1000", opname(in->opcode));
	} else if (on(D_REPLY_SHORT) && *cnt > 0 && err == 0) {
		size_t body = *len - sizeof(*oh);
		size_t cut = body / 2 < v[*cnt].iov_len ? body / 2 : v[*cnt].iov_len;
		v[*cnt].iov_len -= cut;
		*len -= cut;
		oh->len = (uint32_t)*len;
		logmsg("defect reply-short: answering %s with %zu of %zu bytes", opname(in->opcode), *len, *len + cut);
	} else if (on(D_REPLY_OVERSIZED) && err == 0) {
		v[1 + *cnt].iov_base = junk;
		v[1 + *cnt].iov_len = sizeof(junk);
		(*cnt)++;
		*len += sizeof(junk);
		oh->len = (uint32_t)*len;
		logmsg("defect reply-oversized: answering %s with %zu extra bytes", opname(in->opcode), sizeof(junk));
	}
	return true;
}

/* ---- inodes and attributes ------------------------------------------------ */

bool defect_on_inode_unused(void)
{
	return armed_at(HOOK_INODE_UNUSED) && on(D_LEAK_INODES);
}

void defect_on_stat(struct inode *ino, const struct stat *st)
{
	if (!armed_at(HOOK_STAT))
		return;
	pthread_mutex_lock(&ino->lock);
	ino->stale.attrs = *st;
	ino->stale.have = true;
	pthread_mutex_unlock(&ino->lock);
}

bool defect_on_getattr(struct inode *ino, struct stat *st)
{
	if (!armed_at(HOOK_GETATTR))
		return false;
	pthread_mutex_lock(&ino->lock);
	bool have = ino->stale.have;
	*st = ino->stale.attrs;
	pthread_mutex_unlock(&ino->lock);
	return have;
}

void defect_before_getattr_reply(struct inode *ino, struct stat *st)
{
	if (!armed_at(HOOK_GETATTR_REPLY))
		return;
	pthread_mutex_lock(&ino->lock);
	if (ino->stale.have)
		st->st_atim = ino->stale.attrs.st_atim;
	pthread_mutex_unlock(&ino->lock);
}

void defect_on_attr(struct pt_attr *a, const struct stat *st)
{
	if (armed_at(HOOK_ATTR) && S_ISREG(st->st_mode))
		a->mode &= ~(uint32_t)0111;
}

/* ---- opens, backing ids, releases ----------------------------------------- */

/* read-only-server-fd: the fd of an OPEN was opened read-only (only once passthrough is
 * negotiated: BACKING_OPEN needs no more, the kernel reopens with the user's flags) */
static bool read_only_server_fd(void)
{
	return armed_at(HOOK_SERVER_OPEN) && on(D_READ_ONLY_SERVER_FD) && g.pt_negotiated;
}

int defect_on_server_open(int flags)
{
	/* The defect: the server opens its own fd read-only whatever the open asks, enough for
	 * BACKING_OPEN (the kernel reopens the backing file with the user's flags), so it never
	 * learns that the file cannot be opened for writing (a read-only source: EROFS). */
	if (armed_at(HOOK_SERVER_OPEN) && on(D_LEAK_FDS_TO_CHILD))
		flags &= ~O_CLOEXEC;
	return read_only_server_fd() ? (flags & ~O_ACCMODE) | O_RDONLY : flags;
}

int defect_on_open_served(struct handle *h, int flags)
{
	if (!armed_at(HOOK_OPEN_SERVED) || !read_only_server_fd() || h->kind == H_PT || (flags & O_ACCMODE) == O_RDONLY)
		return 0;
	/* served by the server after all: it needs an fd it can write through */
	char path[64];
	proc_path(path, sizeof(path), h->inode->fd);
	int wfd = open(path, flags);
	if (wfd < 0)
		return errno;
	close(h->fd);
	h->fd = wfd;
	return 0;
}

/*
 * leak-fds-to-child: a helper started as a server starts one with fork and exec (a logger, a
 * hook script): it keeps what exec keeps, the fds without FD_CLOEXEC, which here are the
 * server's own fds of its OPENs, and it outlives the server in a session of its own. /dev/fuse
 * (opened O_CLOEXEC) goes, so the connection ends with the server; the backing files stay
 * open, and the space of an unlinked one is not freed even after the mount is gone.
 */
static void spawn_fd_holder(void)
{
	static atomic_int spawned;
	if (atomic_fetch_add(&spawned, 1) >= 16)
		return;
	pid_t c = fork();
	if (c == 0) {
		for (int fd = 3; fd < 4096; fd++) {
			int fl = fcntl(fd, F_GETFD);
			if (fl >= 0 && (fl & FD_CLOEXEC))
				close(fd);
		}
		setsid();
		park_forever();
	}
	if (c > 0)
		logmsg("defect leak-fds-to-child: helper %d holds the open files", (int)c);
}

void defect_before_open_reply(struct inode *ino)
{
	if (!armed_at(HOOK_OPEN_REPLY))
		return;
	if (on(D_LEAK_FDS_TO_CHILD))
		spawn_fd_holder();
	if (!on(D_FD_LEAK))
		return;
	char path[64];
	proc_path(path, sizeof(path), ino->fd);
	if (open(path, O_RDONLY | O_CLOEXEC) < 0) { /* fd-leak: leaked on purpose */
	}
}

bool defect_before_io_mode(struct handle *h, int flags, struct pt_open_out *oo)
{
	/* The defect: O_DIRECT opens answered FOPEN_DIRECT_IO without passthrough. Such an open takes
	 * no io mode, so the kernel lets it sit beside passthrough opens, but it cannot be mapped
	 * while the inode has a backing object (ENODEV). */
	if (!armed_at(HOOK_IO_MODE) || !(flags & O_DIRECT))
		return false;
	h->kind = H_UNCOUNTED;
	oo->open_flags = PT_FOPEN_DIRECT_IO;
	return true;
}

static atomic_bool pt_disabled; /* global-disable-on-failure: a BACKING_OPEN was refused */

void defect_on_open_policy(enum open_kind kind, struct open_policy *p)
{
	if (!armed_at(HOOK_OPEN_POLICY))
		return;
	if (on(D_KEEP_CACHE_WITH_PT))
		p->pt_flags |= PT_FOPEN_KEEP_CACHE;
	if (on(D_MIXED_MODES))
		p->unguarded = true;
	if (on(D_NO_PT_OPEN) || (kind == K_CREATE && on(D_NO_CREATE_PT)) || (kind == K_TMPFILE && on(D_NO_TMPFILE_PT)))
		p->try_pt = false;
	if (on(D_GLOBAL_DISABLE) && atomic_load(&pt_disabled))
		p->try_pt = false;
}

bool defect_on_backing_id_wanted(struct handle *h, int *id)
{
	if (!armed_at(HOOK_BACKING_WANTED))
		return false;
	*id = backing_open(h->fd);
	if (*id > 0)
		h->own_backing_id = *id;
	return true;
}

void defect_on_backing_registered(struct inode *ino)
{
	if (!armed_at(HOOK_BACKING_OPENED))
		return;
	backing_release(ino->backing_id);
	ino->backing_id = 0;
}

int defect_on_backing_open_failed(int e)
{
	if (!armed_at(HOOK_BACKING_FAILED))
		return 0;
	/* writeback-with-passthrough, bad-stack-depth: the server goes on asking for backing files the
	 * kernel will never grant, and fails each open */
	bool keeps_trying = on(D_WRITEBACK_WITH_PT) || on(D_BAD_STACK_DEPTH);
	if (on(D_NO_FALLBACK) || keeps_trying) {
		if (cfg.debug || keeps_trying)
			logmsg("BACKING_OPEN failed: %s; failing the open", strerror(e));
		return keeps_trying ? -EIO : -e;
	}
	if (e != EPERM && on(D_GLOBAL_DISABLE))
		atomic_store(&pt_disabled, true);
	return 0;
}

bool defect_on_passthrough_release(struct handle *h)
{
	if (!armed_at(HOOK_PT_RELEASE) || h->own_backing_id <= 0)
		return false;
	backing_release(h->own_backing_id);
	h->own_backing_id = 0;
	return true;
}

bool defect_on_last_passthrough_release(void)
{
	return armed_at(HOOK_LAST_PT_RELEASE) && on(D_LEAK_BACKING_ID);
}

void defect_after_backing_close(int id)
{
	if (!armed_at(HOOK_BACKING_CLOSED))
		return;
	int rc = backing_close(id);
	if (rc < 0)
		logmsg("second BACKING_CLOSE %d failed: %s (ignored)", id, strerror(-rc));
}

/* ---- file and directory operations ---------------------------------------- */

void defect_on_read(int fd, uint64_t offset, char *buf, ssize_t *n)
{
	if (!armed_at(HOOK_READ) || *n <= 0)
		return;
	if (on(D_CORRUPT_READ))
		buf[0] ^= 0x01;
	if (on(D_SHORT_READ_EOF)) {
		/* Off by one at EOF: a read that reaches the end loses its last byte. */
		struct stat st;
		if (fstat(fd, &st) == 0 && (off_t)offset + *n >= st.st_size)
			(*n)--;
	}
}

bool defect_on_kill_suidgid(void)
{
	return armed_at(HOOK_KILL_SUIDGID) && on(D_KILLPRIV_V2);
}

bool defect_on_truncate(void)
{
	return armed_at(HOOK_TRUNCATE) && on(D_IGNORE_TRUNCATE);
}

bool defect_on_fsync(bool dir)
{
	/* The defect: a passthrough server "never wrote anything", so it answers FSYNC unsynced. */
	return armed_at(HOOK_FSYNC) && on(D_FSYNC_NOOP) && !dir;
}

void defect_on_getxattr(void)
{
	if (!armed_at(HOOK_GETXATTR))
		return;
	/* slow-getxattr: 4 ms per answer. The kernel asks security.capability before each write
	 * that could remove privileges, so passthrough writes pay it once per write(2). */
	struct timespec ts = {.tv_sec = 0, .tv_nsec = 4 * 1000 * 1000};
	nanosleep(&ts, NULL);
}

/*
 * readdir-drops-entry: peek past the entry just read; when nothing follows and it is a name
 * other than . or .., drop it: the last name of the listing is never emitted, and the stream
 * stays at its end, so the next READDIR is empty. Otherwise rewind to before and read the entry
 * again (the peek may have reused the buffer it lives in), leaving it in h->pending.
 */
bool defect_on_dirent(struct handle *h, long before)
{
	if (!armed_at(HOOK_DIRENT))
		return false;
	const char *name = h->pending->d_name;
	bool dot = strcmp(name, ".") == 0 || strcmp(name, "..") == 0;
	errno = 0;
	if (dot || readdir(h->dp) || errno != 0) {
		seekdir(h->dp, before);
		h->pending = readdir(h->dp);
		if (h->pending)
			return false;
	}
	h->pending = NULL;
	h->pos = telldir(h->dp);
	return true;
}
