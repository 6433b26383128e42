/* ptfs: backing ids and the io-mode policy of opens. */
#include "ptfs.h"
#include "defects.h"
#include "inodes.h"
#include "iomode.h"

/* ---- backing ids -------------------------------------------------------- */

int backing_open(int fd)
{
	struct pt_backing_map map = {.fd = fd, .flags = 0, .padding = 0};
	int id = ioctl(g.devfd, PT_DEV_IOC_BACKING_OPEN, &map);
	if (id < 0)
		return -errno;
	return id;
}

int backing_close(int id)
{
	uint32_t v = (uint32_t)id;
	if (ioctl(g.devfd, PT_DEV_IOC_BACKING_CLOSE, &v) < 0)
		return -errno;
	return 0;
}

void backing_release(int id)
{
	int rc = backing_close(id);
	if (rc < 0)
		logmsg("BACKING_CLOSE %d failed: %s", id, strerror(-rc));
	defect_after_backing_close(id);
}

/* ---- --probe-open-replies ----------------------------------------------- */

/* The last component of the name an O_PATH fd was opened by ("" if unknown). */
static const char *name_of(int fd, char *buf, size_t len)
{
	char link[64];
	proc_path(link, sizeof(link), fd);
	ssize_t n = readlink(link, buf, len - 1);
	if (n < 0)
		return "";
	buf[n] = 0;
	const char *slash = strrchr(buf, '/');
	return slash ? slash + 1 : buf;
}

/*
 * PLT-008/PLT-009: the open reply of a file is shaped by its name, so one mount holds the cases
 * of replies the kernel must refuse or honour. flags-HEX ORs those FOPEN_* bits into the reply
 * (on a connection without passthrough ptfs has no id: a reply the bits make passthrough names
 * id 1); id-zero, id-negative and id-unknown name backing id 0, -1 and INT_MAX instead of the
 * inode's; id-closed names an id of the file opened and closed again just before the reply.
 * The bookkeeping stays the inode's own: the kernel's RELEASE of a refused open undoes it.
 */
static void probe_open_reply(struct handle *h, struct pt_open_out *oo)
{
	char buf[PATH_MAX];
	const char *name = name_of(h->inode->fd, buf, sizeof(buf));
	if (strncmp(name, "flags-", 6) == 0) {
		char *end;
		unsigned long bits = strtoul(name + 6, &end, 16);
		if (end != name + 6 && (*end == 0 || *end == '.')) {
			oo->open_flags |= (uint32_t)bits;
			if ((oo->open_flags & PT_FOPEN_PASSTHROUGH) && oo->backing_id == 0)
				oo->backing_id = 1;
		}
		return;
	}
	if (!(oo->open_flags & PT_FOPEN_PASSTHROUGH))
		return;
	if (strcmp(name, "id-zero") == 0) {
		oo->backing_id = 0;
	} else if (strcmp(name, "id-negative") == 0) {
		oo->backing_id = -1;
	} else if (strcmp(name, "id-unknown") == 0) {
		oo->backing_id = INT32_MAX;
	} else if (strcmp(name, "id-closed") == 0) {
		int id = backing_open(h->fd);
		if (id > 0 && backing_close(id) == 0)
			oo->backing_id = id;
		else
			logmsg("--probe-open-replies: id-closed: BACKING_OPEN/CLOSE failed (%d)", id);
	}
}

/* OPENDIR under --probe-open-replies: a directory named dir-passthrough is answered with
 * FOPEN_PASSTHROUGH and an id no BACKING_OPEN returned (the kernel ignores both). */
void probe_opendir_reply(struct inode *ino, struct pt_open_out *oo)
{
	char buf[PATH_MAX];
	if (!cfg.probe_open_replies || strcmp(name_of(ino->fd, buf, sizeof(buf)), "dir-passthrough") != 0)
		return;
	oo->open_flags |= PT_FOPEN_PASSTHROUGH;
	oo->backing_id = INT32_MAX;
}

/* ---- io modes ----------------------------------------------------------- */

/*
 * Decide how a new open of an inode is served and fill the open reply.
 * The rule that keeps the kernel's io modes apart: an inode with cached opens
 * gets cached opens; an inode with a backing id gets passthrough opens naming
 * that id; otherwise the open tries to register the inode's backing id, and
 * falls back to cached (server-side read/write) if the kernel refuses it.
 */
int choose_io_mode(struct handle *h, int flags, enum open_kind kind, struct pt_open_out *oo)
{
	int accmode = flags & O_ACCMODE;
	struct inode *ino = h->inode;
	bool counted_cached = true;
	uint32_t cached_flags = 0;

	memset(oo, 0, sizeof(*oo));
	oo->fh = (uint64_t)(uintptr_t)h;
	if (defect_before_io_mode(h, flags, oo))
		return 0;

	struct open_policy pol = {
		.try_pt = g.pt_negotiated && cfg.policy != POL_CACHED && cfg.policy != POL_DIRECT,
		.unguarded = cfg.policy == POL_BY_ACCESS,
	};
	if (cfg.policy == POL_PT_DIRECT) {
		pol.pt_flags = PT_FOPEN_DIRECT_IO;
		cached_flags = PT_FOPEN_DIRECT_IO;
		counted_cached = false;
	}
	if (cfg.policy == POL_DIRECT) {
		cached_flags = PT_FOPEN_DIRECT_IO;
		counted_cached = false;
	}
	defect_on_open_policy(kind, &pol);
	bool try_pt = pol.try_pt;
	if (pol.unguarded && accmode == O_RDONLY)
		try_pt = false;
	if (atomic_load(&g.pt_refused))
		try_pt = false;

	/* passthrough-reads: only read-only opens ask for a backing file; an open for writing joins
	 * the inode's backing object when the inode is in passthrough already (cached beside it
	 * would be refused by the kernel), and is served by the server otherwise. */
	bool join_only = cfg.policy == POL_PT_READS && accmode != O_RDONLY;

	pthread_mutex_lock(&ino->lock);
	int id = 0;
	if (try_pt && join_only) {
		id = ino->pt_opens > 0 ? ino->backing_id : 0;
	} else if (try_pt) {
		if (defect_on_backing_id_wanted(h, &id)) {
			/* the defect got the id */
		} else if (!pol.unguarded && ino->cached_opens > 0) {
			id = 0; /* never mix: this inode is in cached mode */
		} else if (ino->backing_id > 0) {
			id = ino->backing_id;
		} else {
			id = backing_open(h->fd);
			if (id > 0) {
				ino->backing_id = id;
				defect_on_backing_registered(ino);
			}
		}
		if (id < 0) {
			int e = -id;
			int fail = defect_on_backing_open_failed(e);
			if (fail) {
				pthread_mutex_unlock(&ino->lock);
				return fail;
			}
			if (e == EPERM) {
				if (!atomic_exchange(&g.pt_refused, true))
					logmsg("BACKING_OPEN: EPERM, passthrough was not granted; serving I/O without it");
			} else if (cfg.debug) {
				logmsg("BACKING_OPEN failed: %s; this open falls back to server I/O", strerror(e));
			}
			id = 0;
		}
	}
	if (id > 0) {
		ino->pt_opens++;
		h->kind = H_PT;
		oo->open_flags = PT_FOPEN_PASSTHROUGH | pol.pt_flags;
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
	if (cfg.probe_open_replies)
		probe_open_reply(h, oo);
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
		if (defect_on_passthrough_release(h)) {
			/* the defect closed the open's own id */
		} else if (ino->pt_opens == 0 && ino->backing_id > 0 && !cfg.ids_until_forget) {
			if (!defect_on_last_passthrough_release())
				backing_release(ino->backing_id);
			ino->backing_id = 0;
		}
	} else if (h->kind == H_CACHED) {
		ino->cached_opens--;
	}
	pthread_mutex_unlock(&ino->lock);
}

void release_handle(struct handle *h)
{
	if (h->kind != H_DIR)
		release_io_mode(h);
	handle_unlink(h);
	handle_destroy(h);
}
