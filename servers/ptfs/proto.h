/* ptfs: reading requests from /dev/fuse (the workers) and writing replies. */
#ifndef PTFS_PROTO_H
#define PTFS_PROTO_H

#include "ptfs.h"

extern const struct transport dev_transport;

/* Returns 0, or -errno of the delivery (ENOENT: the request was interrupted). */
int reply_iov(struct req *r, int err, struct iovec *iov, int cnt);
int reply_err(struct req *r, int err);
int reply_buf(struct req *r, const void *p, size_t len);

extern atomic_bool stopping; /* the workers stop reading */
void wake_handler(int sig);
void *worker_main(void *arg);
/* A worker saw the connection end: the main thread stops waiting. */
void notify_done(void);

#endif
