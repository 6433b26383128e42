/* ptfs: backing ids and the io-mode policy of opens. */
#ifndef PTFS_IOMODE_H
#define PTFS_IOMODE_H

#include "ptfs.h"

/* How the file came to be opened: the create paths have defects of their own. */
enum open_kind { K_OPEN, K_CREATE, K_TMPFILE };

int backing_close(int id);
void backing_release(int id);
int choose_io_mode(struct handle *h, int flags, enum open_kind kind, struct pt_open_out *oo);
void release_handle(struct handle *h);

#endif
