/* ptfs: what every part of the server shares (configuration, state, logging). */
#ifndef PTFS_H
#define PTFS_H

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

struct config {
	const char *source;
	const char *mountpoint;
	int threads;
	bool threads_given; /* --threads on the command line */
	uint64_t timeout_sec;
	uint32_t timeout_nsec;
	bool no_allow_other; /* mount without allow_other: only the mounter (root) may enter */
	bool no_passthrough;
	uint32_t max_stack_depth;
	bool writeback;
	bool direct_io_allow_mmap;
	enum io_policy policy;
	bool ids_until_forget; /* --backing-ids until-forget: an inode keeps its id until the kernel forgets it */
	bool probe_open_replies; /* --probe-open-replies: a file's or directory's name shapes its open reply */
	uint32_t open_flags_extra;
	const char *selfcheck_path;
	const char *init_report_path;
	bool debug;
	bool io_uring; /* --io-uring: ask for FUSE over io_uring */
};

extern struct config cfg;

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
	struct {
		bool have;
		struct stat attrs;
	} stale; /* stale-attrs, stale-atime (defects.c): the attributes of the last LOOKUP/SETATTR/CREATE */
};

enum handle_kind { H_PT, H_CACHED, H_UNCOUNTED, H_DIR };

struct handle {
	struct handle *prev, *next; /* handles_lock, for cleanup at exit */
	struct inode *inode;
	enum handle_kind kind;
	int fd;
	int own_backing_id; /* backing-id-per-open (defects.c): this open's own id */
	/* directories */
	pthread_mutex_t dlock;
	DIR *dp;
	off_t pos;
	struct dirent *pending;
};

struct state {
	int devfd;
	uint64_t offered;
	uint64_t replied;
	bool pt_negotiated;      /* we asked for it in the INIT reply */
	bool uring_ready;        /* --io-uring: rings and threads are set up, INIT may ask for it */
	bool uring_active;       /* requests are served over io_uring */
	atomic_bool pt_refused;  /* BACKING_OPEN said EPERM: the kernel did not grant it */
	pthread_mutex_t table_lock;
	struct inode **buckets;
	struct inode root;
	pthread_mutex_t handles_lock;
	struct handle handles; /* list head */
	int done_pipe[2];
	/* the workers, and a pipe that gets the main thread out of its poll on the device: for
	 * close-dev-on (defects.c), which takes every device fd away */
	struct worker *workers;
	int nworkers;
	int wake_pipe[2];
};

extern struct state g;

struct uring;

struct worker {
	pthread_t tid;
	int fd;
	bool own_fd;
	atomic_bool exited;
	atomic_bool quit;   /* a ring worker stops (io_uring not granted) */
	char *buf;
	char *out;
	struct uring *ring; /* a ring worker (uring.c): its io_uring and entry; NULL on /dev/fuse */
};

struct req;

/*
 * How a request arrived and how its reply leaves: the handlers (ops.c) see only struct req and
 * answer through reply_iov (proto.c), which calls the transport's send.  Two exist: the device
 * (read(2)/writev(2) on a /dev/fuse fd, proto.c) and FUSE over io_uring (ring entries, uring.c).
 */
struct transport {
	const char *name;
	/* Deliver one reply: v[0] is the fuse_out_header, v[1..cnt-1] the body, len the total.
	 * Returns 0, or -errno when the kernel refused it (ENOENT: the request is gone). */
	int (*send)(struct req *r, struct iovec *v, int cnt, size_t len);
};

struct req {
	struct worker *w;            /* the thread serving it */
	const struct transport *tp;
	void *tctx;                  /* the transport's own state for this request (a ring entry) */
	const struct pt_in_header *in;
	const char *arg;             /* the arguments after the header, contiguous as on /dev/fuse */
	size_t arglen;
	char *out;                   /* OUT_BUFSIZE bytes a handler may build its reply body in */
};

/* ---- logging and small helpers (util.c) --------------------------------- */

void logmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
const char *opname(uint32_t op);
uint32_t parse_opcode(const char *s);
const char *errname(int e);
void proc_path(char *buf, size_t len, int fd);

#endif
