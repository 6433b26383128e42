/*
 * ptfs defects: deliberate server bugs (--defect NAME) that prove fusecert's clauses can fail.
 *
 * Every defect is one entry of defect_table (defects.c): its name, whether it takes an OPCODE,
 * a line for --help, and the hooks it acts at. The server calls the hooks below at the moments
 * they are named for; each returns the clean behaviour unless an enabled defect acts there, so
 * the server's own code paths carry no defect branches. Adding a defect: an entry in the table
 * (and enum defect), and its behaviour in the hook for the moment it changes (or a new hook,
 * called from that moment).
 */
#ifndef PTFS_DEFECTS_H
#define PTFS_DEFECTS_H

#include "ptfs.h"
#include "iomode.h"

/* The order of the table, which is the order of the error listing of an unknown defect. */
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
	D_IO_URING_NEVER_ASKED,
	D_STALE_ATIME,
	D_NO_OPEN,
	D_LEAK_FDS_TO_CHILD,
	D_COUNT
};

/* The hooks, one bit each in a table entry's .hooks: where the defect acts. */
enum defect_hook {
	/* start-up and shutdown (main.c, init.c) */
	HOOK_MOUNT,           /* defect_on_mount */
	HOOK_AFTER_MOUNT,     /* defect_after_mount */
	HOOK_INIT_FLAGS,      /* defect_on_init_flags */
	HOOK_INIT_DEPTH,      /* defect_on_init_depth */
	HOOK_SIGNAL,          /* defect_on_signal */
	HOOK_SHUTDOWN,        /* defect_on_shutdown */
	/* the protocol (proto.c, ops.c) */
	HOOK_READ_DEVICE,     /* defect_before_read_device */
	HOOK_REQUEST,         /* defect_on_request */
	HOOK_REPLY,           /* defect_on_reply */
	/* inodes and attributes (inodes.c, ops.c) */
	HOOK_INODE_UNUSED,    /* defect_on_inode_unused */
	HOOK_STAT,            /* defect_on_stat */
	HOOK_GETATTR,         /* defect_on_getattr */
	HOOK_ATTR,            /* defect_on_attr */
	HOOK_GETATTR_REPLY,   /* defect_before_getattr_reply */
	/* opens, backing ids and releases (ops.c, iomode.c) */
	HOOK_SERVER_OPEN,     /* defect_on_server_open */
	HOOK_IO_MODE,         /* defect_before_io_mode */
	HOOK_OPEN_POLICY,     /* defect_on_open_policy */
	HOOK_BACKING_WANTED,  /* defect_on_backing_id_wanted */
	HOOK_BACKING_OPENED,  /* defect_on_backing_registered */
	HOOK_BACKING_FAILED,  /* defect_on_backing_open_failed */
	HOOK_OPEN_SERVED,     /* defect_on_open_served */
	HOOK_OPEN_REPLY,      /* defect_before_open_reply */
	HOOK_PT_RELEASE,      /* defect_on_passthrough_release */
	HOOK_LAST_PT_RELEASE, /* defect_on_last_passthrough_release */
	HOOK_BACKING_CLOSED,  /* defect_after_backing_close */
	/* file and directory operations (ops.c) */
	HOOK_READ,            /* defect_on_read */
	HOOK_KILL_SUIDGID,    /* defect_on_kill_suidgid */
	HOOK_TRUNCATE,        /* defect_on_truncate */
	HOOK_FSYNC,           /* defect_on_fsync */
	HOOK_GETXATTR,        /* defect_on_getxattr */
	HOOK_DIRENT,          /* defect_on_dirent */
	HOOK_COUNT
};

_Static_assert(HOOK_COUNT <= 32, "hooks fit an unsigned");

/* Where a defect's OPCODE is kept: the reply-* defects share one (the last given), as ever. */
enum defect_opcode { NO_OPCODE, OPCODE_HANG, OPCODE_CRASH, OPCODE_CLOSE_DEV, OPCODE_REPLY, OPCODE_SLOTS };

struct defect_def {
	const char *name;          /* --defect NAME */
	enum defect_opcode opcode; /* NO_OPCODE, or it takes an OPCODE (kept in that slot) */
	const char *help;          /* one line for --help */
	unsigned hooks;            /* 1 << HOOK_X for each hook it acts at */
};

extern const struct defect_def defect_table[D_COUNT];

/* ---- the command line (main.c) ------------------------------------------- */

/* The defect named NAME, or -1. */
int defect_lookup(const char *name);
/* Enable defect d; opcode is its OPCODE when it takes one. */
void defect_enable(enum defect d, uint32_t opcode);
/* "ptfs: error: unknown defect 'NAME'; valid: ..." and exit 2. */
void defect_unknown(const char *name) __attribute__((noreturn));
/* The defect list of --help. */
void defect_usage(FILE *f);

/* ---- start-up and shutdown ---------------------------------------------- */

/* Before mount(2): the mountpoint to mount at (mount-elsewhere). */
const char *defect_on_mount(const char *mountpoint);
/* Right after the mount (fork-children). */
void defect_after_mount(void);
/* INIT: the flags ptfs asks for, given those it wants (writeback-with-passthrough, killpriv-v2,
 * io-uring-never-asked). */
uint64_t defect_on_init_flags(uint64_t want);
/* INIT: the max_stack_depth of the reply, given the flags replied (bad-stack-depth). */
uint32_t defect_on_init_depth(uint64_t reply, uint32_t depth);
/* The main thread read a stop signal: true to ignore it (ignore-sigterm). */
bool defect_on_signal(uint32_t signo);
/* Shutdown begins: release whatever a defect holds up (hang-on's workers). */
void defect_on_shutdown(void);

/* ---- the protocol ------------------------------------------------------- */

/* A worker is about to read /dev/fuse: true when it must not (close-dev-on took the device
 * away; the hook parked it a while). */
bool defect_before_read_device(void);
/* A request was read, before it is served: true when a defect took it (hang-on, close-dev-on:
 * no answer; no-open: answered by the defect); crash-on aborts here. */
bool defect_on_request(struct req *r);
/* A reply is about to be written: the header oh and the iovec v[0..*cnt] (v[0] the header, room
 * for one more) of *len bytes may be rewritten. True when the request's opcode is a reply-*
 * defect's, whose failed writes are then logged. */
bool defect_on_reply(const struct pt_in_header *in, int err, struct pt_out_header *oh, struct iovec *v, int *cnt,
		     size_t *len);

/* ---- inodes and attributes ---------------------------------------------- */

/* The kernel and every handle are done with an inode: true to keep it (leak-inodes). */
bool defect_on_inode_unused(void);
/* Attributes were just read from the backing file (stale-attrs caches them). */
void defect_on_stat(struct inode *ino, const struct stat *st);
/* GETATTR, before the backing file is asked: true when *st holds the answer (stale-attrs). */
bool defect_on_getattr(struct inode *ino, struct stat *st);
/* GETATTR: the backing file's attributes st are about to be replied (stale-atime keeps the atime
 * of the last LOOKUP/SETATTR/CREATE). */
void defect_before_getattr_reply(struct inode *ino, struct stat *st);
/* A reply's attributes were filled from st (no-exec-bits). */
void defect_on_attr(struct pt_attr *a, const struct stat *st);

/* ---- opens, backing ids, releases --------------------------------------- */

/* OPEN: the flags the server opens its own fd with, given those the open needs
 * (read-only-server-fd, leak-fds-to-child). */
int defect_on_server_open(int flags);
/* Before an open's io mode is chosen: true when the defect answered it (oo->open_flags set, the
 * handle takes no io mode: direct-io-for-o-direct). */
bool defect_before_io_mode(struct handle *h, int flags, struct pt_open_out *oo);

/* The policy of this open was decided (keep-cache-with-passthrough, mixed-modes,
 * no-passthrough-open, no-create-passthrough, no-tmpfile-passthrough, global-disable-on-failure). */
void defect_on_open_policy(enum open_kind kind, struct open_policy *p);
/* Under the inode's lock, a passthrough open needs a backing id: true when the defect got it
 * into *id (backing-id-per-open: the open's own). */
bool defect_on_backing_id_wanted(struct handle *h, int *id);
/* The inode just registered its backing id (close-before-reply). */
void defect_on_backing_registered(struct inode *ino);
/* BACKING_OPEN for an open failed with errno e: 0 to fall back as the server does, or -errno to
 * fail the open (no-fallback, writeback-with-passthrough, bad-stack-depth). */
int defect_on_backing_open_failed(int e);
/* OPEN: the io mode is chosen and the open is about to be answered: 0, or an errno to fail it
 * (read-only-server-fd: a server-served write open needs a writable fd). */
int defect_on_open_served(struct handle *h, int flags);
/* An OPEN or CREATE is about to be answered (fd-leak, leak-fds-to-child). */
void defect_before_open_reply(struct inode *ino);
/* A passthrough open's release, under the inode's lock: true when the defect dealt with its
 * backing id (backing-id-per-open). */
bool defect_on_passthrough_release(struct handle *h);
/* The last passthrough release of an inode: true to leave its id open (leak-backing-id). */
bool defect_on_last_passthrough_release(void);
/* BACKING_CLOSE of id was just issued (double-close). */
void defect_after_backing_close(int id);

/* ---- file and directory operations -------------------------------------- */

/* A server-side READ at offset read *n bytes of fd into buf (corrupt-read, short-read-eof). */
void defect_on_read(int fd, uint64_t offset, char *buf, ssize_t *n);
/* A WRITE asks to clear setuid/setgid: true to leave them (killpriv-v2). */
bool defect_on_kill_suidgid(void);
/* SETATTR asks for a size: true to skip the truncate and still succeed (ignore-truncate). */
bool defect_on_truncate(void);
/* FSYNC or FSYNCDIR: true to answer 0 without syncing (fsync-noop). */
bool defect_on_fsync(bool dir);
/* GETXATTR or LISTXATTR, before the backing file is asked (slow-getxattr). */
void defect_on_getxattr(void);
/* READDIR/READDIRPLUS read h->pending from position before: true when the defect swallowed it
 * and the reply ends here (readdir-drops-entry). */
bool defect_on_dirent(struct handle *h, long before);

#endif
