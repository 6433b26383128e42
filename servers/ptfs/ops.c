/* ptfs: the opcode handlers. */
#include "ptfs.h"
#include "defects.h"
#include "inodes.h"
#include "iomode.h"
#include "proto.h"
#include "ops.h"

/* ---- attributes and entries --------------------------------------------- */

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
	a->nlink = st->st_nlink;
	a->uid = st->st_uid;
	a->gid = st->st_gid;
	a->rdev = encode_dev(st->st_rdev);
	a->blksize = st->st_blksize;
	defect_on_attr(a, st);
}

static int stat_inode(struct inode *ino, struct stat *st)
{
	if (fstatat(ino->fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	return 0;
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
	defect_on_stat(ino, st);
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
	if (defect_on_getattr(ino, &st))
		return reply_attr(r, &st);
	int rc = stat_inode(ino, &st);
	if (rc < 0)
		return (void)reply_err(r, -rc);
	defect_before_getattr_reply(ino, &st);
	defect_on_stat(ino, &st);
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
	if ((si->valid & PT_FATTR_SIZE) && !defect_on_truncate()) {
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
	defect_on_stat(ino, &st);
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

/* After a call made as the caller (as_caller): back to the server's credentials, then the new
 * entry, or the call's errno. */
static void made(struct req *r, struct inode *parent, const char *name, int rc, int e)
{
	as_server();
	if (rc < 0)
		return (void)reply_err(r, e);
	reply_new_entry(r, parent, name);
}

static void op_mknod(struct req *r, struct inode *parent)
{
	const struct pt_mknod_in *mi = (const void *)r->arg;
	const char *name = arg_string(r, sizeof(*mi), NULL);
	if (r->arglen < sizeof(*mi) || !name)
		return (void)reply_err(r, EINVAL);
	as_caller(r->in);
	int rc = mknodat(parent->fd, name, mi->mode, decode_dev(mi->rdev));
	made(r, parent, name, rc, errno);
}

static void op_mkdir(struct req *r, struct inode *parent)
{
	const struct pt_mkdir_in *mi = (const void *)r->arg;
	const char *name = arg_string(r, sizeof(*mi), NULL);
	if (r->arglen < sizeof(*mi) || !name)
		return (void)reply_err(r, EINVAL);
	as_caller(r->in);
	int rc = mkdirat(parent->fd, name, mi->mode);
	made(r, parent, name, rc, errno);
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
	made(r, parent, name, rc, errno);
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
	int f = server_open_flags(oi->flags);
	int fd = open(path, defect_on_server_open(f));
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
	int e = defect_on_open_served(h, f);
	if (e) {
		release_handle(h);
		return (void)reply_err(r, e);
	}
	defect_before_open_reply(ino);
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
	defect_on_stat(ino, &st);
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
	defect_before_open_reply(ino);
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
	ssize_t n = pread(h->fd, r->out, size, (off_t)ri->offset);
	if (n < 0)
		return (void)reply_err(r, errno);
	defect_on_read(h->fd, ri->offset, r->out, &n);
	reply_buf(r, r->out, (size_t)n);
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
	if ((wi->write_flags & PT_WRITE_KILL_SUIDGID) && !defect_on_kill_suidgid())
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
	if (defect_on_fsync(dir))
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
	defect_on_getxattr();
	size_t size = gi->size > OUT_BUFSIZE ? OUT_BUFSIZE : gi->size;
	ssize_t n = list ? listxattr(path, size ? r->out : NULL, size)
			 : getxattr(path, name, size ? r->out : NULL, size);
	if (n < 0)
		return (void)reply_err(r, errno);
	if (gi->size == 0) {
		struct pt_getxattr_out go = {.size = (uint32_t)n};
		return (void)reply_buf(r, &go, sizeof(go));
	}
	reply_buf(r, r->out, (size_t)n);
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
	probe_opendir_reply(ino, &oo);
	reply_open(r, h, &oo, sizeof(oo));
}

static void op_readdir(struct req *r, struct inode *dir, bool plus)
{
	const struct pt_read_in *ri = (const void *)r->arg;
	if (r->arglen < sizeof(*ri))
		return (void)reply_err(r, EINVAL);
	struct handle *h = handle_of(ri->fh);
	size_t size = ri->size > OUT_BUFSIZE ? OUT_BUFSIZE : ri->size;
	char *out = r->out;
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
			long before = telldir(h->dp);
			errno = 0;
			h->pending = readdir(h->dp);
			if (!h->pending) {
				err = errno;
				break;
			}
			if (defect_on_dirent(h, before))
				break;
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

void dispatch(struct req *r)
{
	const struct pt_in_header *in = r->in;
	uint32_t op = in->opcode;
	if (cfg.debug)
		logmsg("unique %" PRIu64 ": %s nodeid %" PRIu64 " len %u pid %u", in->unique, opname(op),
		       in->nodeid, in->len, in->pid);
	if (defect_on_request(r))
		return;

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
