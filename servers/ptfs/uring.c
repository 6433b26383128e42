/*
 * ptfs: FUSE over io_uring (--io-uring), with the raw io_uring syscalls (no liburing).
 *
 * The kernel's side (fs/fuse/dev_uring.c, Linux 6.14+): the ring has one queue per possible CPU
 * (qid = CPU number) and a request goes to the queue of the CPU its caller runs on; it is
 * "ready", and the connection switches its requests to it, once every queue has an entry
 * registered (until then requests wait: the INIT reply that asked for FUSE_OVER_IO_URING made
 * the kernel hold new requests back).  FORGET and INTERRUPT still come over /dev/fuse.
 *
 * Here every entry has its own thread and its own small io_uring (SQE128, as the kernel wants
 * its 80-byte command area): the thread registers the entry, waits for its completion (a
 * request), serves it with dispatch() as the /dev/fuse workers do, and queues the reply as a
 * COMMIT_AND_FETCH that it submits with the next wait -- one io_uring_enter(2) per request.
 * One entry per thread because a handler is synchronous: a second entry on a busy thread would
 * only hold a request the kernel could have given to an idle one.
 */
#include "ptfs.h"
#include "defects.h"
#include "proto.h"
#include "ops.h"
#include "uring.h"

#include <linux/io_uring.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>

#define SQ_ENTRIES 4
#define SQE_SIZE 128                                 /* IORING_SETUP_SQE128 */
#define PAYLOAD_SIZE (MAX_WRITE + 4096)              /* >= max(8192, max_write, max_pages * 4096) */
#define ARG_SLACK (sizeof(struct pt_in_header) + PT_URING_OP_IN_OUT_SZ)

struct uring {
	int fd;                 /* the io_uring */
	void *sq_map, *cq_map, *sqe_map;
	size_t sq_len, cq_len, sqe_len;
	unsigned *sq_head, *sq_tail, *sq_array, sq_mask;
	unsigned *cq_head, *cq_tail, cq_mask;
	struct io_uring_cqe *cqes;

	/* the entry */
	int qid;
	struct pt_uring_req_header *hdr; /* iov[0] */
	char *buf;                       /* ARG_SLACK bytes, then the payload (iov[1]) */
	char *payload;
	struct iovec iov[2];
	uint64_t commit_id;
	bool replied;
	int result; /* of the registration: 0, or -errno */
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	enum { ST_WAIT, ST_GO, ST_QUIT } state;
	int nthreads, registered, failed, first_err, first_err_qid;
	int nqueues, per_queue;
} rs = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

int uring_queues(void)
{
	return rs.nqueues;
}

/* ---- the io_uring ---------------------------------------------------------- */

static int sys_setup(unsigned entries, struct io_uring_params *p)
{
	return (int)syscall(__NR_io_uring_setup, entries, p);
}

static int sys_enter(int fd, unsigned submit, unsigned min_complete, unsigned flags)
{
	return (int)syscall(__NR_io_uring_enter, fd, submit, min_complete, flags, NULL, 0);
}

static void ring_unmap(struct uring *u)
{
	if (u->sqe_map && u->sqe_map != MAP_FAILED)
		munmap(u->sqe_map, u->sqe_len);
	if (u->cq_map && u->cq_map != MAP_FAILED && u->cq_map != u->sq_map)
		munmap(u->cq_map, u->cq_len);
	if (u->sq_map && u->sq_map != MAP_FAILED)
		munmap(u->sq_map, u->sq_len);
	u->sq_map = u->cq_map = u->sqe_map = NULL;
}

/* Closing the io_uring cancels the entry's command: the kernel takes the entry off its queue. */
static void ring_close(struct uring *u)
{
	if (u->fd < 0)
		return;
	ring_unmap(u);
	close(u->fd);
	u->fd = -1;
}

static int ring_open(struct uring *u)
{
	struct io_uring_params p;
	memset(&p, 0, sizeof(p));
	p.flags = IORING_SETUP_SQE128;
	u->fd = sys_setup(SQ_ENTRIES, &p);
	if (u->fd < 0)
		return -errno;
	u->sq_len = p.sq_off.array + p.sq_entries * sizeof(unsigned);
	u->cq_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
	if (p.features & IORING_FEAT_SINGLE_MMAP) {
		if (u->cq_len > u->sq_len)
			u->sq_len = u->cq_len;
		u->cq_len = u->sq_len;
	}
	u->sq_map = mmap(NULL, u->sq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, u->fd,
			 IORING_OFF_SQ_RING);
	if (u->sq_map == MAP_FAILED)
		goto fail;
	if (p.features & IORING_FEAT_SINGLE_MMAP)
		u->cq_map = u->sq_map;
	else
		u->cq_map = mmap(NULL, u->cq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, u->fd,
				 IORING_OFF_CQ_RING);
	if (u->cq_map == MAP_FAILED)
		goto fail;
	u->sqe_len = p.sq_entries * SQE_SIZE;
	u->sqe_map = mmap(NULL, u->sqe_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, u->fd,
			  IORING_OFF_SQES);
	if (u->sqe_map == MAP_FAILED)
		goto fail;
	char *sq = u->sq_map, *cq = u->cq_map;
	u->sq_head = (unsigned *)(sq + p.sq_off.head);
	u->sq_tail = (unsigned *)(sq + p.sq_off.tail);
	u->sq_mask = *(unsigned *)(sq + p.sq_off.ring_mask);
	u->sq_array = (unsigned *)(sq + p.sq_off.array);
	u->cq_head = (unsigned *)(cq + p.cq_off.head);
	u->cq_tail = (unsigned *)(cq + p.cq_off.tail);
	u->cq_mask = *(unsigned *)(cq + p.cq_off.ring_mask);
	u->cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
	return 0;
fail:;
	int e = errno;
	ring_unmap(u);
	close(u->fd);
	u->fd = -1;
	return -e;
}

/* Queue one FUSE command for the entry (submitted by the next sys_enter). */
static void queue_cmd(struct uring *u, uint32_t cmd)
{
	unsigned tail = *u->sq_tail; /* only this thread writes it */
	unsigned idx = tail & u->sq_mask;
	struct io_uring_sqe *sqe = (struct io_uring_sqe *)((char *)u->sqe_map + (size_t)idx * SQE_SIZE);
	memset(sqe, 0, SQE_SIZE);
	sqe->opcode = IORING_OP_URING_CMD;
	sqe->fd = g.devfd;
	sqe->cmd_op = cmd;
	sqe->user_data = cmd;
	if (cmd == PT_IO_URING_CMD_REGISTER) {
		sqe->addr = (uint64_t)(uintptr_t)u->iov;
		sqe->len = 2;
	}
	struct pt_uring_cmd_req *cr = (struct pt_uring_cmd_req *)sqe->cmd;
	cr->qid = (uint16_t)u->qid;
	cr->commit_id = cmd == PT_IO_URING_CMD_COMMIT_AND_FETCH ? u->commit_id : 0;
	u->sq_array[idx] = idx;
	__atomic_store_n(u->sq_tail, tail + 1, __ATOMIC_RELEASE);
}

static unsigned unsubmitted(struct uring *u)
{
	return *u->sq_tail - __atomic_load_n(u->sq_head, __ATOMIC_ACQUIRE);
}

/* Take one completion if there is one: returns true and its result. */
static bool take_cqe(struct uring *u, int *res, uint64_t *data)
{
	unsigned head = *u->cq_head;
	if (head == __atomic_load_n(u->cq_tail, __ATOMIC_ACQUIRE))
		return false;
	struct io_uring_cqe *c = &u->cqes[head & u->cq_mask];
	*res = c->res;
	*data = c->user_data;
	__atomic_store_n(u->cq_head, head + 1, __ATOMIC_RELEASE);
	return true;
}

/* ---- the transport ----------------------------------------------------------- */

/* The reply goes into the entry: the out header into in_out, the body into the payload. */
static int uring_send(struct req *r, struct iovec *v, int cnt, size_t len)
{
	(void)len;
	struct uring *u = r->tctx;
	if (u->replied)
		return -EALREADY;
	struct pt_out_header oh;
	memcpy(&oh, v[0].iov_base, sizeof(oh));
	size_t body = 0;
	for (int i = 1; i < cnt; i++)
		body += v[i].iov_len;
	if (body > PAYLOAD_SIZE) {
		logmsg("io_uring: reply to %s has %zu bytes, more than the ring's payload; answering EIO",
		       opname(r->in->opcode), body);
		oh.error = -EIO;
		body = 0;
		cnt = 1;
	}
	char *dst = u->payload;
	for (int i = 1; i < cnt; i++) {
		if (v[i].iov_base != dst) /* a handler may have built it in place (req.out == payload) */
			memmove(dst, v[i].iov_base, v[i].iov_len);
		dst += v[i].iov_len;
	}
	memset(u->hdr->in_out, 0, sizeof(oh));
	memcpy(u->hdr->in_out, &oh, sizeof(oh));
	u->hdr->ring_ent_in_out.payload_sz = (uint32_t)body;
	u->replied = true;
	queue_cmd(u, PT_IO_URING_CMD_COMMIT_AND_FETCH);
	/* Delivered with the thread's next io_uring_enter; the kernel's verdict on it is not known
	 * here (a commit it refuses completes with an error, logged by the thread). */
	return 0;
}

static const struct transport uring_transport = {.name = "io_uring", .send = uring_send};

/* A request arrived in the entry: rebuild the /dev/fuse layout (header, first argument, the
 * rest) in front of the payload, where the slack is, and serve it. */
static void serve(struct worker *w, struct uring *u)
{
	struct pt_in_header ih;
	memcpy(&ih, u->hdr->in_out, sizeof(ih));
	uint32_t psz = u->hdr->ring_ent_in_out.payload_sz;
	u->commit_id = u->hdr->ring_ent_in_out.commit_id;
	u->replied = false;
	size_t oplen = (size_t)ih.len - sizeof(ih) - psz;
	if (ih.len < sizeof(ih) + psz || oplen > PT_URING_OP_IN_OUT_SZ || psz > PAYLOAD_SIZE) {
		logmsg("io_uring: malformed request (len %u, payload %u, opcode %u)", ih.len, psz, ih.opcode);
		struct pt_out_header oh = {.len = sizeof(oh), .error = -EIO, .unique = ih.unique};
		struct iovec v = {.iov_base = &oh, .iov_len = sizeof(oh)};
		struct req r = {.w = w, .tp = &uring_transport, .tctx = u, .in = &ih};
		uring_send(&r, &v, 1, sizeof(oh));
		return;
	}
	char *arg = u->payload - oplen;
	memcpy(arg, u->hdr->op_in, oplen);
	memcpy(arg - sizeof(ih), &ih, sizeof(ih));
	struct req r = {
		.w = w,
		.tp = &uring_transport,
		.tctx = u,
		.in = (const void *)(arg - sizeof(ih)),
		.arg = arg,
		.arglen = oplen + psz,
		/* with no payload arguments the body can be built where it is sent from */
		.out = psz == 0 ? u->payload : w->out,
	};
	dispatch(&r);
	if (!u->replied) {
		/* No reply (a defect parked the request): the kernel keeps the entry with the request
		 * as /dev/fuse keeps an unanswered request; register the buffers again as a new entry
		 * so that the thread goes on serving. */
		queue_cmd(u, PT_IO_URING_CMD_REGISTER);
	}
}

/* ---- the threads --------------------------------------------------------------- */

static void pin_to(int cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set) < 0) {
		/* an offline or excluded CPU: run anywhere */
	}
}

static void report(struct uring *u, int result)
{
	pthread_mutex_lock(&rs.lock);
	u->result = result;
	if (result == 0) {
		rs.registered++;
	} else {
		if (rs.failed++ == 0) {
			rs.first_err = result;
			rs.first_err_qid = u->qid;
		}
	}
	pthread_cond_broadcast(&rs.cond);
	pthread_mutex_unlock(&rs.lock);
}

void *uring_worker_main(void *arg)
{
	struct worker *w = arg;
	struct uring *u = w->ring;
	pin_to(u->qid);

	pthread_mutex_lock(&rs.lock);
	while (rs.state == ST_WAIT)
		pthread_cond_wait(&rs.cond, &rs.lock);
	bool go = rs.state == ST_GO;
	pthread_mutex_unlock(&rs.lock);
	if (!go)
		goto out;

	sigset_t usr1;
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	pthread_sigmask(SIG_UNBLOCK, &usr1, NULL);

	/* Register.  A refusal completes at once (the command fails inline); an accepted entry
	 * completes only when a request arrives. */
	queue_cmd(u, PT_IO_URING_CMD_REGISTER);
	int rc;
	do
		rc = sys_enter(u->fd, 1, 0, 0);
	while (rc < 0 && errno == EINTR && unsubmitted(u) > 0);
	if (rc < 0) {
		report(u, -errno);
		goto out;
	}
	int res;
	uint64_t data;
	bool have = take_cqe(u, &res, &data);
	if (have && res < 0) {
		report(u, res);
		goto out;
	}
	report(u, 0);

	while (!atomic_load(&stopping) && !atomic_load(&w->quit)) {
		if (have) {
			have = false;
			if (res == 0) {
				serve(w, u);
			} else if (res == -ENOTCONN || res == -ECONNABORTED || res == -ECANCELED ||
				   res == -ENODEV) {
				/* the connection ended (unmount, abort): the kernel tore the entry down */
				notify_done();
				break;
			} else {
				logmsg("io_uring: queue %d: %s failed: %s; registering the entry again", u->qid,
				       data == PT_IO_URING_CMD_REGISTER ? "REGISTER" : "COMMIT_AND_FETCH",
				       strerror(-res));
				if (data == PT_IO_URING_CMD_REGISTER) {
					struct timespec ts = {.tv_sec = 0, .tv_nsec = 100 * 1000 * 1000};
					nanosleep(&ts, NULL);
				}
				queue_cmd(u, PT_IO_URING_CMD_REGISTER);
			}
			continue;
		}
		if (defect_before_read_device()) {
			/* close-dev-on: the device is gone; give the entry back by closing the ring */
			ring_close(u);
			continue;
		}
		if (u->fd < 0)
			break;
		have = take_cqe(u, &res, &data);
		if (have)
			continue;
		/* Submit the reply (if any) and wait for the next request: one syscall. */
		rc = sys_enter(u->fd, unsubmitted(u), 1, IORING_ENTER_GETEVENTS);
		if (rc < 0 && errno != EINTR && errno != EAGAIN && errno != EBUSY) {
			logmsg("io_uring: queue %d: io_uring_enter: %s", u->qid, strerror(errno));
			notify_done();
			break;
		}
		have = take_cqe(u, &res, &data);
	}
out:
	atomic_store(&w->exited, true);
	return NULL;
}

/* ---- set-up and tear-down ------------------------------------------------------ */

/* The kernel's queue count: num_possible_cpus(). */
static int possible_cpus(void)
{
	FILE *f = fopen("/sys/devices/system/cpu/possible", "r");
	int n = 0;
	if (f) {
		char line[256];
		if (fgets(line, sizeof(line), f)) {
			char *p = line;
			while (*p && *p != '\n') {
				char *end;
				long a = strtol(p, &end, 10), b = a;
				if (end == p)
					break;
				p = end;
				if (*p == '-') {
					b = strtol(p + 1, &end, 10);
					p = end;
				}
				n += (int)(b - a + 1);
				if (*p == ',')
					p++;
			}
		}
		fclose(f);
	}
	return n > 0 ? n : get_nprocs_conf();
}

void uring_worker_free(struct worker *w)
{
	struct uring *u = w->ring;
	if (!u)
		return;
	ring_close(u);
	free(u->hdr);
	free(u->buf);
	free(u);
	w->ring = NULL;
}

int uring_queue_count(void)
{
	return possible_cpus();
}

int uring_prepare(struct worker *ws, int per_queue, char *why, size_t whylen)
{
	int nq = possible_cpus();
	rs.state = ST_WAIT;
	rs.nqueues = nq;
	rs.per_queue = per_queue;
	int n = 0;
	for (int q = 0; q < nq; q++) {
		for (int i = 0; i < per_queue; i++) {
			struct worker *w = &ws[n];
			memset(w, 0, sizeof(*w));
			w->fd = g.devfd;
			struct uring *u = calloc(1, sizeof(*u));
			if (u) {
				u->fd = -1;
				u->qid = q;
				u->hdr = aligned_alloc(4096, 4096);
				u->buf = aligned_alloc(4096, 4096 + PAYLOAD_SIZE);
			}
			w->out = malloc(OUT_BUFSIZE);
			w->ring = u;
			if (!u || !u->hdr || !u->buf || !w->out) {
				snprintf(why, whylen, "out of memory for the ring buffers");
				goto fail;
			}
			memset(u->hdr, 0, sizeof(*u->hdr));
			u->payload = u->buf + 4096; /* page aligned, ARG_SLACK bytes of room before it */
			u->iov[0].iov_base = u->hdr;
			u->iov[0].iov_len = sizeof(*u->hdr);
			u->iov[1].iov_base = u->payload;
			u->iov[1].iov_len = PAYLOAD_SIZE;
			int rc = ring_open(u);
			if (rc < 0) {
				snprintf(why, whylen, "io_uring_setup: %s", strerror(-rc));
				goto fail;
			}
			if (pthread_create(&w->tid, NULL, uring_worker_main, w) != 0) {
				snprintf(why, whylen, "cannot start a ring thread");
				goto fail;
			}
			n++;
		}
	}
	rs.nthreads = n;
	return n;
fail:
	uring_worker_free(&ws[n]);
	free(ws[n].out);
	ws[n].out = NULL;
	uring_abandon(ws, n);
	return 0;
}

_Static_assert(ARG_SLACK <= 4096, "room for the header and the first argument before the payload");

int uring_start(char *why, size_t whylen)
{
	pthread_mutex_lock(&rs.lock);
	rs.state = ST_GO;
	pthread_cond_broadcast(&rs.cond);
	while (rs.registered + rs.failed < rs.nthreads)
		pthread_cond_wait(&rs.cond, &rs.lock);
	int failed = rs.failed, err = rs.first_err, qid = rs.first_err_qid;
	pthread_mutex_unlock(&rs.lock);
	if (failed == 0)
		return 0;
	snprintf(why, whylen, "FUSE_IO_URING_CMD_REGISTER on queue %d: %s", qid, strerror(-err));
	return -1;
}

void uring_abandon(struct worker *ws, int n)
{
	pthread_mutex_lock(&rs.lock);
	if (rs.state == ST_WAIT)
		rs.state = ST_QUIT;
	pthread_cond_broadcast(&rs.cond);
	pthread_mutex_unlock(&rs.lock);
	/* Threads that registered wait in io_uring_enter: a signal gets them out (EINTR), they see
	 * their quit flag, and closing the ring afterwards takes the entry back from the kernel. */
	for (int i = 0; i < n; i++) {
		struct worker *w = &ws[i];
		atomic_store(&w->quit, true);
		while (!atomic_load(&w->exited)) {
			pthread_kill(w->tid, SIGUSR1);
			struct timespec ts = {.tv_sec = 0, .tv_nsec = 10 * 1000 * 1000};
			nanosleep(&ts, NULL);
		}
		pthread_join(w->tid, NULL);
		uring_worker_free(w);
		free(w->out);
		w->out = NULL;
	}
}
