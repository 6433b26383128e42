/* ptfs: the inode table (node id = inode pointer, 1 = root) and the handle table. */
#ifndef PTFS_INODES_H
#define PTFS_INODES_H

#include "ptfs.h"

static inline uint64_t nodeid_of(struct inode *ino)
{
	return ino == &g.root ? PT_ROOT_ID : (uint64_t)(uintptr_t)ino;
}

static inline struct inode *inode_of(uint64_t nodeid)
{
	return nodeid == PT_ROOT_ID ? &g.root : (struct inode *)(uintptr_t)nodeid;
}

static inline size_t bucket_of(dev_t dev, ino_t ino)
{
	uint64_t h = (uint64_t)ino * 0x9E3779B97F4A7C15ULL ^ (uint64_t)dev;
	return (size_t)(h >> 16) % NBUCKETS;
}

static inline struct handle *handle_of(uint64_t fh)
{
	return (struct handle *)(uintptr_t)fh;
}

void inode_init_common(struct inode *ino, int fd, const struct stat *st);
struct inode *inode_get(int fd, const struct stat *st);
void inode_free(struct inode *ino);
void inode_forget(struct inode *ino, uint64_t n);
struct handle *handle_new(struct inode *ino, int fd, enum handle_kind kind);
void handle_unlink(struct handle *h);
void handle_destroy(struct handle *h);

#endif
