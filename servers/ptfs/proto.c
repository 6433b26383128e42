/* ptfs: the protocol side: reading requests from /dev/fuse and writing replies. */
#include "ptfs.h"
#include "defects.h"
#include "proto.h"
#include "ops.h"

/* ---- the /dev/fuse transport --------------------------------------------- */

static int dev_send(struct req *r, struct iovec *v, int cnt, size_t len)
{
	(void)len;
	ssize_t n = writev(r->w->fd, v, cnt);
	return n < 0 ? -errno : 0;
}

const struct transport dev_transport = {.name = "/dev/fuse", .send = dev_send};

/* ---- replies (every transport) ------------------------------------------- */

/* Returns 0, or -errno of the delivery (ENOENT: the request was interrupted). */
int reply_iov(struct req *r, int err, struct iovec *iov, int cnt)
{
	struct iovec v[5];
	struct pt_out_header oh;
	size_t len = sizeof(oh);
	v[0].iov_base = &oh;
	v[0].iov_len = sizeof(oh);
	for (int i = 0; i < cnt && err == 0; i++) {
		v[1 + i] = iov[i];
		len += iov[i].iov_len;
	}
	if (err)
		cnt = 0;
	oh.len = (uint32_t)len;
	oh.error = err ? -err : 0;
	oh.unique = r->in->unique;
	bool watched = defect_on_reply(r->in, err, &oh, v, &cnt, &len);
	if (cfg.debug)
		logmsg("   unique %" PRIu64 ": %s -> %s%s (%zu bytes)", r->in->unique, opname(r->in->opcode),
		       err ? "error " : "ok", err ? (errname(err) ? errname(err) : strerror(err)) : "", len);
	int rc = r->tp->send(r, v, 1 + cnt, len);
	if (rc < 0) {
		int e = -rc;
		if ((e != ENOENT && e != ENODEV) || watched)
			logmsg("reply to %s failed: %s", opname(r->in->opcode), strerror(e));
		return -e;
	}
	return 0;
}

int reply_err(struct req *r, int err)
{
	return reply_iov(r, err, NULL, 0);
}

int reply_buf(struct req *r, const void *p, size_t len)
{
	struct iovec v = {.iov_base = (void *)p, .iov_len = len};
	return reply_iov(r, 0, &v, len ? 1 : 0);
}

/* ---- workers ------------------------------------------------------------ */

void notify_done(void)
{
	char c = 1;
	if (write(g.done_pipe[1], &c, 1) < 0) {
	}
}

atomic_bool stopping;

void wake_handler(int sig)
{
	(void)sig; /* only there to interrupt a blocking read */
}

/*
 * Blocking reads: the kernel wakes one reader per request (exclusive wait),
 * where poll() would wake every worker for each request.  Shutdown interrupts
 * the reads with SIGUSR1 (installed without SA_RESTART).
 */
void *worker_main(void *arg)
{
	struct worker *w = arg;
	sigset_t usr1;
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	pthread_sigmask(SIG_UNBLOCK, &usr1, NULL);
	while (!atomic_load(&stopping)) {
		if (defect_before_read_device())
			continue;
		ssize_t n = read(w->fd, w->buf, REQ_BUFSIZE);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN || errno == ENOENT)
				continue;
			if (errno != ENODEV)
				logmsg("read /dev/fuse: %s", strerror(errno));
			notify_done();
			break;
		}
		if ((size_t)n < sizeof(struct pt_in_header))
			continue;
		struct req r = {
			.w = w,
			.tp = &dev_transport,
			.out = w->out,
			.in = (const void *)w->buf,
			.arg = w->buf + sizeof(struct pt_in_header),
			.arglen = (size_t)n - sizeof(struct pt_in_header),
		};
		dispatch(&r);
	}
	atomic_store(&w->exited, true);
	return NULL;
}
