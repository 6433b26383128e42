/* ptfs: FUSE over io_uring (--io-uring): ring queues, their entries, the threads serving them. */
#ifndef PTFS_URING_H
#define PTFS_URING_H

#include "ptfs.h"

/*
 * Before INIT: one io_uring and one thread per entry, `per_queue` entries for every possible CPU
 * (the kernel's queue ids), the threads waiting.  Workers go to ws[0..n-1]; returns n, or 0 with
 * *why set (nothing is left running).
 */
int uring_prepare(struct worker *ws, int per_queue, char *why, size_t whylen);
/* After an INIT reply that asked for FUSE_OVER_IO_URING: every thread registers its entry.
 * Returns 0 once every queue has them (the kernel serves over the ring), else -1 with *why. */
int uring_start(char *why, size_t whylen);
/* Stop and free the ring workers ws[0..n-1] (when the kernel does not grant io_uring). */
void uring_abandon(struct worker *ws, int n);
int uring_queues(void);
/* The kernel's number of queues: the possible CPUs (ws must have room for that * per_queue). */
int uring_queue_count(void);
/* The thread of a ring worker; and what a ring worker holds, freed after its thread ended. */
void *uring_worker_main(void *arg);
void uring_worker_free(struct worker *w);

#endif
