/* ptfs: the opcode handlers. */
#ifndef PTFS_OPS_H
#define PTFS_OPS_H

#include "ptfs.h"

/* Serve one request (a worker calls it for each request it reads). */
void dispatch(struct req *r);

#endif
