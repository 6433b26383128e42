/* ptfs: the inode table and the handle table. */
#include "ptfs.h"
#include "defects.h"
#include "inodes.h"
#include "iomode.h"

/* ---- inode table -------------------------------------------------------- */

void inode_init_common(struct inode *ino, int fd, const struct stat *st)
{
	ino->fd = fd;
	ino->dev = st->st_dev;
	ino->ino = st->st_ino;
	pthread_mutex_init(&ino->lock, NULL);
}

/* Takes ownership of fd.  Returns the inode with one more lookup. */
struct inode *inode_get(int fd, const struct stat *st)
{
	size_t b = bucket_of(st->st_dev, st->st_ino);
	pthread_mutex_lock(&g.table_lock);
	for (struct inode *p = g.buckets[b]; p; p = p->hnext) {
		if (p->dev == st->st_dev && p->ino == st->st_ino) {
			p->nlookup++;
			pthread_mutex_unlock(&g.table_lock);
			close(fd);
			return p;
		}
	}
	struct inode *ino = calloc(1, sizeof(*ino));
	if (!ino) {
		pthread_mutex_unlock(&g.table_lock);
		close(fd);
		return NULL;
	}
	inode_init_common(ino, fd, st);
	ino->nlookup = 1;
	ino->hnext = g.buckets[b];
	g.buckets[b] = ino;
	pthread_mutex_unlock(&g.table_lock);
	return ino;
}

void inode_free(struct inode *ino)
{
	close(ino->fd);
	pthread_mutex_destroy(&ino->lock);
	free(ino);
}

/* Caller holds table_lock.  Frees the inode once the kernel and handles are done. */
static bool inode_maybe_drop_locked(struct inode *ino)
{
	if (ino == &g.root || ino->nlookup > 0 || ino->nopen > 0)
		return false;
	if (defect_on_inode_unused())
		return false;
	struct inode **pp = &g.buckets[bucket_of(ino->dev, ino->ino)];
	while (*pp && *pp != ino)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = ino->hnext;
	return true;
}

/*
 * An inode the kernel and every handle are done with. Under --backing-ids until-forget its id was
 * kept after the last passthrough release and is closed now: the backing file stays pinned until
 * the kernel forgets the inode (which, for an unlinked file, comes right after its last close).
 */
static void inode_gone(struct inode *ino)
{
	if (ino->backing_id > 0) {
		backing_release(ino->backing_id);
		ino->backing_id = 0;
	}
	inode_free(ino);
}

void inode_forget(struct inode *ino, uint64_t n)
{
	pthread_mutex_lock(&g.table_lock);
	if (ino != &g.root)
		ino->nlookup = n > ino->nlookup ? 0 : ino->nlookup - n;
	bool drop = inode_maybe_drop_locked(ino);
	pthread_mutex_unlock(&g.table_lock);
	if (drop)
		inode_gone(ino);
}

static void inode_open_ref(struct inode *ino)
{
	pthread_mutex_lock(&g.table_lock);
	ino->nopen++;
	pthread_mutex_unlock(&g.table_lock);
}

static void inode_open_unref(struct inode *ino)
{
	pthread_mutex_lock(&g.table_lock);
	ino->nopen--;
	bool drop = inode_maybe_drop_locked(ino);
	pthread_mutex_unlock(&g.table_lock);
	if (drop)
		inode_gone(ino);
}

/* ---- handles ------------------------------------------------------------ */

struct handle *handle_new(struct inode *ino, int fd, enum handle_kind kind)
{
	struct handle *h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	h->inode = ino;
	h->fd = fd;
	h->kind = kind;
	pthread_mutex_init(&h->dlock, NULL);
	inode_open_ref(ino);
	pthread_mutex_lock(&g.handles_lock);
	h->next = g.handles.next;
	h->prev = &g.handles;
	g.handles.next->prev = h;
	g.handles.next = h;
	pthread_mutex_unlock(&g.handles_lock);
	return h;
}

void handle_unlink(struct handle *h)
{
	pthread_mutex_lock(&g.handles_lock);
	h->prev->next = h->next;
	h->next->prev = h->prev;
	pthread_mutex_unlock(&g.handles_lock);
}

void handle_destroy(struct handle *h)
{
	if (h->dp)
		closedir(h->dp);
	else if (h->fd >= 0)
		close(h->fd);
	pthread_mutex_destroy(&h->dlock);
	struct inode *ino = h->inode;
	free(h);
	inode_open_unref(ino);
}
