/* ptfs: INIT negotiation and the probes run after it (--ioctl-selfcheck, --init-report). */
#include "ptfs.h"
#include "defects.h"
#include "iomode.h"
#include "proto.h"
#include "init.h"

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

static int backing_open_map(int fd, uint32_t flags, uint64_t padding)
{
	struct pt_backing_map map = {.fd = fd, .flags = flags, .padding = padding};
	int id = ioctl(g.devfd, PT_DEV_IOC_BACKING_OPEN, &map);
	return id < 0 ? -errno : id;
}

static void close_result(char *buf, size_t len, int rc)
{
	if (rc == 0)
		snprintf(buf, len, "ok");
	else
		result_str(buf, len, rc);
}

/* The error cases of SPEC.md section 2, run against our own connection. */
static void ioctl_selfcheck(const char *out_path)
{
	char flags_nz[32], pad_nz[32], bad_fd[32], dir[32], pipe_r[32], opath[32], regular[32];
	char c0[32], cneg[32], cunk[32], creg[32], cdbl[32], copath[32];
	int file = open(cfg.source, O_RDWR | O_TMPFILE | O_CLOEXEC, 0600);
	if (file < 0)
		file = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	result_str(flags_nz, sizeof(flags_nz), backing_open_map(file, 1, 0));
	result_str(pad_nz, sizeof(pad_nz), backing_open_map(file, 0, 1));
	int closed = dup(file);
	close(closed);
	result_str(bad_fd, sizeof(bad_fd), backing_open_map(closed, 0, 0));
	int dfd = open(cfg.source, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc = backing_open_map(dfd, 0, 0);
	result_str(dir, sizeof(dir), rc);
	if (rc > 0)
		backing_close(rc);
	close(dfd);
	int p[2] = {-1, -1};
	if (pipe(p) == 0) {
		rc = backing_open_map(p[0], 0, 0);
		result_str(pipe_r, sizeof(pipe_r), rc);
		if (rc > 0)
			backing_close(rc);
		close(p[0]);
		close(p[1]);
	} else {
		snprintf(pipe_r, sizeof(pipe_r), "skipped");
	}
	char path[64];
	proc_path(path, sizeof(path), file);
	int pfd = open(path, O_PATH | O_CLOEXEC);
	rc = backing_open_map(pfd, 0, 0);
	result_str(opath, sizeof(opath), rc);
	close_result(copath, sizeof(copath), rc > 0 ? backing_close(rc) : rc);
	close(pfd);
	int id = backing_open_map(file, 0, 0);
	result_str(regular, sizeof(regular), id);
	close(file);
	close_result(c0, sizeof(c0), backing_close(0));
	close_result(cneg, sizeof(cneg), backing_close(-1));
	close_result(cunk, sizeof(cunk), backing_close(INT32_MAX - 7));
	if (id > 0) {
		close_result(creg, sizeof(creg), backing_close(id));
		close_result(cdbl, sizeof(cdbl), backing_close(id));
	} else {
		snprintf(creg, sizeof(creg), "skipped");
		snprintf(cdbl, sizeof(cdbl), "skipped");
	}
	bool granted = id > 0 || strcmp(flags_nz, "EINVAL") == 0;
	char json[2048];
	snprintf(json, sizeof(json),
		 "{\"granted\":%s,\"flags_nonzero\":\"%s\",\"padding_nonzero\":\"%s\",\"bad_fd\":\"%s\","
		 "\"directory\":\"%s\",\"pipe\":\"%s\",\"o_path\":\"%s\",\"close_o_path\":\"%s\","
		 "\"regular\":\"%s\",\"close_regular\":\"%s\",\"double_close\":\"%s\","
		 "\"close_id0\":\"%s\",\"close_negative\":\"%s\",\"close_unknown\":\"%s\"}\n",
		 granted ? "true" : "false", flags_nz, pad_nz, bad_fd, dir, pipe_r, opath, copath, regular,
		 creg, cdbl, c0, cneg, cunk);
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
