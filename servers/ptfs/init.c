/* ptfs: INIT negotiation and the probes run after it (--ioctl-selfcheck, --init-report). */
#include "ptfs.h"
#include "defects.h"
#include "iomode.h"
#include "proto.h"
#include "init.h"

#include <linux/capability.h>
#include <sys/socket.h>
#include <sys/syscall.h>

/* ---- INIT, probes ------------------------------------------------------- */

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (!f || fputs(text, f) < 0 || fclose(f) != 0)
		logmsg("cannot write %s: %s", path, strerror(errno));
}

static void result_str(char *buf, size_t len, int rc)
{
	if (rc >= 0) {
		snprintf(buf, len, "id:%d", rc);
		return;
	}
	const char *n = errname(-rc);
	if (n)
		snprintf(buf, len, "%s", n);
	else
		snprintf(buf, len, "errno:%d", -rc);
}

/* BACKING_OPEN through device fd `dev`: the id, or -errno. */
static int bopen_on(int dev, int fd, uint32_t flags, uint64_t padding)
{
	struct pt_backing_map map = {.fd = fd, .flags = flags, .padding = padding};
	int id = ioctl(dev, PT_DEV_IOC_BACKING_OPEN, &map);
	return id < 0 ? -errno : id;
}

static int backing_open_map(int fd, uint32_t flags, uint64_t padding)
{
	return bopen_on(g.devfd, fd, flags, padding);
}

/* BACKING_CLOSE through device fd `dev`: 0, or -errno. */
static int bclose_on(int dev, int id)
{
	uint32_t v = (uint32_t)id;
	return ioctl(dev, PT_DEV_IOC_BACKING_CLOSE, &v) < 0 ? -errno : 0;
}

static void close_result(char *buf, size_t len, int rc)
{
	if (rc == 0)
		snprintf(buf, len, "ok");
	else
		result_str(buf, len, rc);
}

/* The self-check's JSON object, built one "key":"value" pair at a time. */
struct sc_out {
	char buf[4096];
	size_t len;
};

static void sc_put(struct sc_out *o, const char *key, const char *val)
{
	int n = snprintf(o->buf + o->len, sizeof(o->buf) - o->len, "%s\"%s\":\"%s\"", o->len > 1 ? "," : "", key, val);
	if (n > 0 && o->len + (size_t)n < sizeof(o->buf))
		o->len += (size_t)n;
}

static void sc_open(struct sc_out *o, const char *key, int rc)
{
	char v[32];
	result_str(v, sizeof(v), rc);
	sc_put(o, key, v);
}

static void sc_close(struct sc_out *o, const char *key, int rc)
{
	char v[32];
	close_result(v, sizeof(v), rc);
	sc_put(o, key, v);
}

/* BACKING_OPEN of a file that is not regular: the result, and any id closed at once. */
static void sc_nonregular(struct sc_out *o, const char *key, int fd)
{
	if (fd < 0) {
		sc_put(o, key, "skipped");
		return;
	}
	int rc = backing_open_map(fd, 0, 0);
	sc_open(o, key, rc);
	if (rc > 0)
		bclose_on(g.devfd, rc);
}

/* The capability case (B5, C1): a thread of its own drops CAP_SYS_ADMIN from its effective set
 * with the raw capset syscall, which changes only the calling thread's credentials, so the rest
 * of the server keeps its capabilities without any restore. */
struct nocap_case {
	int file;	/* regular file for BACKING_OPEN */
	int live_id;	/* an id opened with the capability, for BACKING_CLOSE */
	int open_rc, close_rc;
	bool dropped;
};

static void *nocap_thread(void *arg)
{
	struct nocap_case *c = arg;
	struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
	struct __user_cap_data_struct data[2];
	memset(data, 0, sizeof(data));
	if (syscall(SYS_capget, &hdr, data) != 0 || !(data[0].effective & (1u << CAP_SYS_ADMIN)))
		return NULL;
	data[0].effective &= ~(1u << CAP_SYS_ADMIN);
	if (syscall(SYS_capset, &hdr, data) != 0)
		return NULL;
	c->dropped = true;
	c->open_rc = backing_open_map(c->file, 0, 0);
	c->close_rc = bclose_on(g.devfd, c->live_id);
	return NULL;
}

/* The error cases of SPEC.md section 2 and the kernel's rules for backing ids
 * (docs/kernel-rules.md B, C), run against our own connection. */
static void ioctl_selfcheck(const char *out_path)
{
	struct sc_out o = {.buf = "{", .len = 1};
	int file = open(cfg.source, O_RDWR | O_TMPFILE | O_CLOEXEC, 0600);
	if (file < 0)
		file = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	char flags_nz[32];
	result_str(flags_nz, sizeof(flags_nz), backing_open_map(file, 1, 0));
	sc_put(&o, "flags_nonzero", flags_nz);
	sc_open(&o, "padding_nonzero", backing_open_map(file, 0, 1));
	int closed = dup(file);
	close(closed);
	sc_open(&o, "bad_fd", backing_open_map(closed, 0, 0));

	/* not regular: a directory, a pipe, a socket, a character device, a symlink (O_PATH) */
	int dfd = open(cfg.source, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	sc_nonregular(&o, "directory", dfd);
	if (dfd >= 0)
		close(dfd);
	int p[2] = {-1, -1};
	if (pipe2(p, O_CLOEXEC) != 0)
		p[0] = p[1] = -1;
	sc_nonregular(&o, "pipe", p[0]);
	if (p[0] >= 0) {
		close(p[0]);
		close(p[1]);
	}
	int sp[2] = {-1, -1};
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) != 0)
		sp[0] = sp[1] = -1;
	sc_nonregular(&o, "socket", sp[0]);
	if (sp[0] >= 0) {
		close(sp[0]);
		close(sp[1]);
	}
	int cdev = open("/dev/null", O_RDWR | O_CLOEXEC);
	sc_nonregular(&o, "chardev", cdev);
	if (cdev >= 0)
		close(cdev);
	int lnk = open("/proc/self/exe", O_PATH | O_NOFOLLOW | O_CLOEXEC);
	sc_nonregular(&o, "symlink_o_path", lnk);
	if (lnk >= 0)
		close(lnk);

	/* an O_PATH fd of a regular file is accepted (fget_raw) */
	char path[64];
	proc_path(path, sizeof(path), file);
	int pfd = open(path, O_PATH | O_CLOEXEC);
	int rc = backing_open_map(pfd, 0, 0);
	sc_open(&o, "o_path", rc);
	sc_close(&o, "close_o_path", rc > 0 ? bclose_on(g.devfd, rc) : rc);
	if (pfd >= 0)
		close(pfd);

	int id = backing_open_map(file, 0, 0);
	sc_open(&o, "regular", id);
	sc_close(&o, "close_id0", bclose_on(g.devfd, 0));
	sc_close(&o, "close_negative", bclose_on(g.devfd, -1)); /* as a u32: 0xffffffff, above INT_MAX */
	sc_close(&o, "close_unknown", bclose_on(g.devfd, INT32_MAX - 7));
	if (id > 0) {
		sc_close(&o, "close_regular", bclose_on(g.devfd, id));
		sc_close(&o, "double_close", bclose_on(g.devfd, id));
	} else {
		sc_put(&o, "close_regular", "skipped");
		sc_put(&o, "double_close", "skipped");
	}
	/* ids are allocated cyclically: with `id` closed, the next open gets the next number */
	int again = backing_open_map(file, 0, 0);
	sc_open(&o, "regular_again", again);
	if (again > 0)
		bclose_on(g.devfd, again);

	/* a clone of the device fd shares the connection's id table */
	int clone = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	uint32_t master = (uint32_t)g.devfd;
	rc = clone < 0 ? -errno : ioctl(clone, PT_DEV_IOC_CLONE, &master) < 0 ? -errno : 0;
	sc_close(&o, "clone", rc);
	if (rc == 0) {
		int a = bopen_on(clone, file, 0, 0);
		sc_open(&o, "clone_open", a);
		sc_close(&o, "clone_id_closed_on_original", a > 0 ? bclose_on(g.devfd, a) : a);
		sc_close(&o, "clone_id_closed_again_on_clone", a > 0 ? bclose_on(clone, a) : a);
		int b = bopen_on(g.devfd, file, 0, 0);
		sc_open(&o, "original_open", b);
		sc_close(&o, "original_id_closed_on_clone", b > 0 ? bclose_on(clone, b) : b);
	}
	if (clone >= 0)
		close(clone);

	/* without CAP_SYS_ADMIN (in a thread of its own) both ioctls give EPERM */
	struct nocap_case nc = {.file = file, .live_id = backing_open_map(file, 0, 0)};
	pthread_t t;
	if (nc.live_id > 0 && pthread_create(&t, NULL, nocap_thread, &nc) == 0)
		pthread_join(t, NULL);
	if (nc.dropped) {
		sc_open(&o, "no_cap_open", nc.open_rc);
		sc_close(&o, "no_cap_close", nc.close_rc);
		if (nc.open_rc > 0)
			bclose_on(g.devfd, nc.open_rc);
	} else {
		sc_put(&o, "no_cap_open", "skipped");
		sc_put(&o, "no_cap_close", "skipped");
	}
	/* the id the capability-less thread tried to close is still live */
	sc_close(&o, "close_after_no_cap", nc.live_id > 0 ? bclose_on(g.devfd, nc.live_id) : nc.live_id);
	close(file);

	bool granted = id > 0 || strcmp(flags_nz, "EINVAL") == 0;
	char json[sizeof(o.buf) + 32];
	snprintf(json, sizeof(json), "{\"granted\":%s,%s}\n", granted ? "true" : "false", o.buf + 1);
	write_file(out_path, json);
}

/* Read and answer INIT on the master fd.  Returns 0, or an exit code. */
int handle_init(char *buf)
{
	ssize_t n;
	for (;;) {
		n = read(g.devfd, buf, REQ_BUFSIZE);
		if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == ENOENT))
			continue;
		break;
	}
	if (n < 0) {
		logmsg("error: reading INIT from /dev/fuse: %s", strerror(errno));
		return 1;
	}
	const struct pt_in_header *in = (const void *)buf;
	const struct pt_init_in *ii = (const void *)(buf + sizeof(*in));
	struct worker w0 = {.fd = g.devfd};
	struct req r = {.w = &w0, .tp = &dev_transport, .in = in, .arg = (const char *)ii, .arglen = (size_t)n - sizeof(*in)};
	if ((size_t)n < sizeof(*in) + 16 || in->opcode != PT_INIT) {
		logmsg("error: first request is %s, expected INIT", opname(in->opcode));
		reply_err(&r, EIO);
		return 1;
	}
	if (ii->major != PT_KERNEL_VERSION) {
		logmsg("error: kernel speaks FUSE %u.%u, ptfs needs 7.x", ii->major, ii->minor);
		reply_err(&r, EPROTO);
		return 1;
	}
	uint64_t offered = ii->flags;
	if ((ii->flags & PT_INIT_INIT_EXT) && r.arglen >= 20)
		offered |= (uint64_t)ii->flags2 << 32;
	g.offered = offered;
	bool pt_offered = (offered & PT_INIT_PASSTHROUGH) != 0;

	uint64_t want = PT_INIT_ASYNC_READ | PT_INIT_BIG_WRITES | PT_INIT_MAX_PAGES | PT_INIT_PARALLEL_DIROPS |
			PT_INIT_AUTO_INVAL_DATA | PT_INIT_DO_READDIRPLUS | PT_INIT_READDIRPLUS_AUTO |
			PT_INIT_INIT_EXT;
	if (!cfg.no_passthrough)
		want |= PT_INIT_PASSTHROUGH;
	if (cfg.writeback)
		want |= PT_INIT_WRITEBACK_CACHE;
	if (cfg.direct_io_allow_mmap)
		want |= PT_INIT_DIRECT_IO_ALLOW_MMAP;
	if (g.uring_ready)
		want |= PT_INIT_OVER_IO_URING;
	want = defect_on_init_flags(want);
	uint64_t reply = want & offered;
	uint32_t depth = (reply & PT_INIT_PASSTHROUGH) ? cfg.max_stack_depth : 0;
	depth = defect_on_init_depth(reply, depth);
	g.replied = reply;
	g.pt_negotiated = (reply & PT_INIT_PASSTHROUGH) != 0;

	struct pt_init_out io;
	memset(&io, 0, sizeof(io));
	io.major = PT_KERNEL_VERSION;
	io.minor = PT_KERNEL_MINOR;
	io.max_readahead = ii->max_readahead;
	io.flags = (uint32_t)reply;
	io.flags2 = (uint32_t)(reply >> 32);
	io.max_background = 64;
	io.congestion_threshold = 48;
	io.max_write = MAX_WRITE;
	io.time_gran = 1;
	io.max_pages = MAX_PAGES;
	io.max_stack_depth = depth;

	if (cfg.init_report_path) {
		char json[1024];
		snprintf(json, sizeof(json),
			 "{\"major\":%u,\"minor\":%u,\"max_readahead\":%u,\"flags\":\"0x%x\",\"flags2\":\"0x%x\","
			 "\"passthrough_offered\":%s,\"reply_minor\":%u,\"reply_flags\":\"0x%x\","
			 "\"reply_flags2\":\"0x%x\",\"max_stack_depth\":%u,\"passthrough_requested\":%s,"
			 "\"writeback_cache\":%s}\n",
			 ii->major, ii->minor, ii->max_readahead, (uint32_t)offered, (uint32_t)(offered >> 32),
			 pt_offered ? "true" : "false", io.minor, io.flags, io.flags2, depth,
			 g.pt_negotiated ? "true" : "false",
			 (reply & PT_INIT_WRITEBACK_CACHE) ? "true" : "false");
		write_file(cfg.init_report_path, json);
	}
	if (!cfg.no_passthrough && !pt_offered) {
		logmsg("error: the kernel does not offer FUSE_PASSTHROUGH (FUSE %u.%u); use --no-passthrough",
		       ii->major, ii->minor);
		reply_err(&r, EPROTO);
		return 2;
	}
	if (reply_buf(&r, &io, sizeof(io)) < 0) {
		logmsg("error: INIT reply failed");
		return 1;
	}
	if (cfg.selfcheck_path)
		ioctl_selfcheck(cfg.selfcheck_path);
	return 0;
}
