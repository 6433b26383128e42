/* ptfs: backing ids and the io-mode policy of opens. */
#ifndef PTFS_IOMODE_H
#define PTFS_IOMODE_H

#include "ptfs.h"

/* How the file came to be opened: the create paths have defects of their own. */
enum open_kind { K_OPEN, K_CREATE, K_TMPFILE };

/* What an open may do, as the io policy says; defect_on_open_policy may bend it. */
struct open_policy {
	bool try_pt;      /* ask for passthrough */
	bool unguarded;   /* read-only opens are cached, the rest passthrough, cached opens beside or not */
	uint32_t pt_flags; /* FOPEN_* bits of a passthrough open besides FOPEN_PASSTHROUGH */
};

int backing_open(int fd);
int backing_close(int id);
void backing_release(int id);
int choose_io_mode(struct handle *h, int flags, enum open_kind kind, struct pt_open_out *oo);
void release_handle(struct handle *h);
void probe_opendir_reply(struct inode *ino, struct pt_open_out *oo);

#endif
