// SPDX-License-Identifier: MIT
/*
 * fusecert-replies: loader and text front end for replies.bpf.c.
 *
 * Protocol (see README.md): prints `ready` once everything is attached, then
 * stays silent, draining the BPF ring into memory, until stdin says
 * `flush TOKEN`; then it writes the records as text lines, in the order of
 * their times, and `flushed TOKEN lost=L`. A flush drops a marker into the
 * ring, which first puts every CPU's staged records in it, and stops at the
 * marker: every record produced before the flush command is in the output.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "replies.h"

#define PROG "fusecert-replies"
#define EXIT_SETUP 2
/* Never keep more than this much unflushed text; the excess is counted as lost. */
#define OUT_CAP ((size_t)1 << 30)
#define MARK_TIMEOUT_MS 1000
/* ring_buffer callback return value meaning "the awaited marker is here, stop". */
#define STOP_AT_MARK (-4096)

/* Embedded replies.bpf.o (replies_obj.S). */
extern const char fusecert_replies_bpf[];
extern const char fusecert_replies_bpf_end[];

struct buf {
	char *p;
	size_t len, cap;
};

static struct {
	struct bpf_object *obj;
	struct ring_buffer *rb;
	int config_fd;
	int lost_fd;
	int servers_fd;
	int ncpus;
	struct config cfg;

	struct buf raw; /* records read from the ring, not yet formatted */
	struct buf txt; /* text of a flush being written */
	uint64_t dropped; /* lines not kept because of OUT_CAP */

	bool awaiting; /* a marker with await_token stops the ring consumer */
	uint64_t await_token;
	bool mark_seen;
	uint32_t mark_tgid;

	bool verbose;
	char libbpf_msg[512]; /* first libbpf warning, for a one-line diagnosis */
} g;

static void __attribute__((noreturn, format(printf, 1, 2))) die(const char *fmt, ...)
{
	va_list ap;

	fputs(PROG ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(EXIT_SETUP);
}

/*
 * libbpf is chatty and multi-line; the protocol promises one stderr line on
 * failure.  Keep the first warning to quote, print everything only on request.
 */
static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (g.verbose)
		return vfprintf(stderr, fmt, ap);
	if (level == LIBBPF_WARN && !g.libbpf_msg[0]) {
		char *p = g.libbpf_msg;

		vsnprintf(p, sizeof(g.libbpf_msg), fmt, ap);
		p[strcspn(p, "\n")] = '\0';
		if (!strncmp(p, "libbpf: ", 8))
			memmove(p, p + 8, strlen(p + 8) + 1);
	}
	return 0;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void write_all(const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(STDOUT_FILENO, p, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			exit(1); /* the reader is gone */
		}
		p += w;
		n -= (size_t)w;
	}
}

static void say(const char *fmt, ...)
{
	char line[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n > 0)
		write_all(line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

static bool buf_reserve(struct buf *b, size_t n)
{
	if (b->len + n <= b->cap)
		return true;
	if (b->len + n > OUT_CAP)
		return false;
	size_t cap = b->cap ? b->cap : 1 << 16;

	while (cap < b->len + n)
		cap *= 2;
	char *p = realloc(b->p, cap);

	if (!p)
		return false;
	b->p = p;
	b->cap = cap;
	return true;
}

static void buf_release(struct buf *b)
{
	b->len = 0;
	if (b->cap > (1u << 24)) { /* give back memory after a big burst */
		free(b->p);
		b->p = NULL;
		b->cap = 0;
	}
}

static void out_line(const char *s, size_t n)
{
	if (!buf_reserve(&g.txt, n)) {
		g.dropped++;
		return;
	}
	memcpy(g.txt.p + g.txt.len, s, n);
	g.txt.len += n;
}

/* ---- ring records -> text ---- */

static void format_reply(const struct rec_reply *r, size_t size)
{
	static const char hex[] = "0123456789abcdef";
	char line[160 + 2 * REPLY_PAYLOAD_MAX];
	uint32_t np = r->npayload;
	int n;

	/* The record carries only npayload bytes of payload; trust neither blindly. */
	if (np > REPLY_PAYLOAD_MAX || REC_REPLY_FIXED_SIZE + np > size)
		np = size > REC_REPLY_FIXED_SIZE ? (uint32_t)(size - REC_REPLY_FIXED_SIZE) : 0;
	if (np > REPLY_PAYLOAD_MAX)
		np = REPLY_PAYLOAD_MAX;
	n = snprintf(line, sizeof(line),
		     "reply %" PRIu64 " %u %u %u %" PRIu64 " %u %u %" PRIu64 " %u %d %u ", (uint64_t)r->ts_ns,
		     r->tid, r->tgid, r->connection, (uint64_t)r->unique, r->opcode, r->fd, (uint64_t)r->count,
		     r->len, r->error, np);
	if (np == 0) {
		line[n++] = '-';
	} else {
		for (uint32_t i = 0; i < np; i++) {
			line[n++] = hex[r->payload[i] >> 4];
			line[n++] = hex[r->payload[i] & 15];
		}
	}
	n += snprintf(line + n, sizeof(line) - (size_t)n, " %d\n", r->wret);
	out_line(line, (size_t)n);
}

static void format_ioctl(const struct rec_ioctl *r)
{
	char line[256];
	int n;

	if (r->cmd == FUSE_DEV_IOC_BACKING_OPEN)
		n = snprintf(line, sizeof(line),
			     "ioctl %" PRIu64 " %" PRIu64 " %u %u %u %08x %" PRId64 " %d %u %" PRIu64 " %u %u\n",
			     (uint64_t)r->enter_ns, (uint64_t)r->exit_ns, r->tid, r->tgid, r->fd, r->cmd,
			     (int64_t)r->ret, (int32_t)(uint32_t)r->a, (uint32_t)r->b, (uint64_t)r->c, r->fault,
			     r->server);
	else
		n = snprintf(line, sizeof(line),
			     "ioctl %" PRIu64 " %" PRIu64 " %u %u %u %08x %" PRId64 " %u 0 0 %u %u\n",
			     (uint64_t)r->enter_ns, (uint64_t)r->exit_ns, r->tid, r->tgid, r->fd, r->cmd,
			     (int64_t)r->ret, (uint32_t)r->a, r->fault, r->server);
	out_line(line, (size_t)n);
}

static void format_sync(const struct rec_sync *r)
{
	static const char *const names[] = {"fsync", "fdatasync", "syncfs", "sync"};
	char line[160];
	int n;

	n = snprintf(line, sizeof(line), "sync %" PRIu64 " %u %u %s %" PRIu64 " %" PRId64 "\n", (uint64_t)r->ts_ns,
		     r->tid, r->tgid, r->call < 4 ? names[r->call] : "?", (uint64_t)r->fd, (int64_t)r->ret);
	out_line(line, (size_t)n);
}

static void put_hex(char *line, int *n, const uint8_t *b, uint32_t len)
{
	static const char hex[] = "0123456789abcdef";

	if (len == 0) {
		line[(*n)++] = '-';
		return;
	}
	for (uint32_t i = 0; i < len; i++) {
		line[(*n)++] = hex[b[i] >> 4];
		line[(*n)++] = hex[b[i] & 15];
	}
}

static void format_kreq(const struct rec_kreq *r)
{
	char line[160 + 2 * KREQ_ARG_MAX];
	uint32_t na = r->narg > KREQ_ARG_MAX ? KREQ_ARG_MAX : r->narg;
	int n = snprintf(line, sizeof(line), "req %" PRIu64 " %u %u %u %" PRIu64 " %u %" PRIu64 " %u %u ",
			 (uint64_t)r->h.ts_ns, r->h.tid, r->h.tgid, r->h.connection, (uint64_t)r->h.unique, r->h.opcode,
			 (uint64_t)r->h.nodeid, r->pid, na);

	put_hex(line, &n, r->arg, na);
	n += snprintf(line + n, sizeof(line) - (size_t)n, " %u\n", r->len);
	out_line(line, (size_t)n);
}

static void format_kend(const struct rec_kend *r)
{
	char line[200 + 4 * KEND_OUT_MAX];
	uint32_t n0 = r->nout0 > KEND_OUT_MAX ? KEND_OUT_MAX : r->nout0;
	uint32_t n1 = r->nout1 > KEND_OUT_MAX ? KEND_OUT_MAX : r->nout1;
	int n = snprintf(line, sizeof(line), "end %" PRIu64 " %u %u %u %" PRIu64 " %u %" PRIu64 " %d %u ",
			 (uint64_t)r->h.ts_ns, r->h.tid, r->h.tgid, r->h.connection, (uint64_t)r->h.unique, r->h.opcode,
			 (uint64_t)r->h.nodeid, r->error, n0);

	put_hex(line, &n, r->out0, n0);
	n += snprintf(line + n, sizeof(line) - (size_t)n, " %u ", n1);
	put_hex(line, &n, r->out1, n1);
	n += snprintf(line + n, sizeof(line) - (size_t)n, " %u %u %u %u\n", r->size0, r->size1, r->h.transport, r->len);
	out_line(line, (size_t)n);
}

/*
 * Records are kept as they came out of the ring (a length and the bytes) and turned into text
 * only at a flush: formatting while the workload runs would take CPU from it, as tracefs's
 * trace_pipe does when it is read during a window.
 */
static void keep_record(const void *data, size_t size)
{
	uint32_t n = (uint32_t)size;

	if (!buf_reserve(&g.raw, sizeof(n) + size)) {
		g.dropped++;
		return;
	}
	memcpy(g.raw.p + g.raw.len, &n, sizeof(n));
	memcpy(g.raw.p + g.raw.len + sizeof(n), data, size);
	g.raw.len += sizeof(n) + size;
}

/* The size of a record that sits in a stage slot (the slot is bigger than most). */
static size_t record_size(const void *slot)
{
	switch (*(const uint32_t *)slot) {
	case REC_KREQ:
		return sizeof(struct rec_kreq);
	case REC_KEND:
		return sizeof(struct rec_kend);
	case REC_IOCTL:
		return sizeof(struct rec_ioctl);
	}
	return 0;
}

/* When a record was made (CLOCK_MONOTONIC ns): the order a flush prints them in. */
static uint64_t record_time(const void *data, size_t size)
{
	switch (size >= sizeof(uint32_t) ? *(const uint32_t *)data : 0) {
	case REC_REPLY:
		return size >= REC_REPLY_FIXED_SIZE ? ((const struct rec_reply *)data)->ts_ns : 0;
	case REC_IOCTL:
		return size >= sizeof(struct rec_ioctl) ? ((const struct rec_ioctl *)data)->exit_ns : 0;
	case REC_SYNC:
		return size >= sizeof(struct rec_sync) ? ((const struct rec_sync *)data)->ts_ns : 0;
	case REC_KREQ:
	case REC_KEND:
		return size >= sizeof(struct rec_head) ? ((const struct rec_head *)data)->ts_ns : 0;
	}
	return 0;
}

struct kept {
	uint64_t ts;
	size_t at;
};

static int by_time(const void *a, const void *b)
{
	const struct kept *x = a, *y = b;

	if (x->ts != y->ts)
		return x->ts < y->ts ? -1 : 1;
	return x->at < y->at ? -1 : x->at > y->at; /* ring order among equals */
}

static void format_record(const void *data, size_t size)
{
	if (size < sizeof(uint32_t))
		return;
	switch (*(const uint32_t *)data) {
	case REC_REPLY:
		if (size >= REC_REPLY_FIXED_SIZE)
			format_reply(data, size);
		break;
	case REC_IOCTL:
		if (size >= sizeof(struct rec_ioctl))
			format_ioctl(data);
		break;
	case REC_SYNC:
		if (size >= sizeof(struct rec_sync))
			format_sync(data);
		break;
	case REC_KREQ:
		if (size >= sizeof(struct rec_kreq))
			format_kreq(data);
		break;
	case REC_KEND:
		if (size >= sizeof(struct rec_kend))
			format_kend(data);
		break;
	}
}

static int on_record(void *ctx, void *data, size_t size)
{
	(void)ctx;
	if (size < sizeof(uint32_t))
		return 0;
	if (*(const uint32_t *)data == REC_MARK) {
		if (size >= sizeof(struct rec_mark)) {
			const struct rec_mark *m = data;

			/* Markers are internal: they end a flush and are never printed. */
			if (g.awaiting && m->token == g.await_token) {
				g.mark_seen = true;
				g.mark_tgid = m->tgid;
				return STOP_AT_MARK;
			}
		}
		return 0;
	}
	if (*(const uint32_t *)data == REC_BATCH) {
		const struct rec_batch *b = data;
		uint32_t n = size >= REC_BATCH_HEAD ? b->n : 0;

		if (n > STAGE_SLOTS || REC_BATCH_HEAD + (size_t)n * STAGE_SLOT > size)
			n = 0;
		for (uint32_t i = 0; i < n; i++)
			keep_record(b->slot[i], record_size(b->slot[i]));
		return 0;
	}
	keep_record(data, size);
	return 0;
}

/* ---- BPF plumbing ---- */

static void push_config(void)
{
	uint32_t zero = 0;

	if (bpf_map_update_elem(g.config_fd, &zero, &g.cfg, BPF_ANY))
		die("bpf(BPF_MAP_UPDATE_ELEM) config: %s", strerror(errno));
}

static uint64_t ring_lost(void)
{
	uint64_t vals[g.ncpus], sum = 0;
	uint32_t zero = 0;

	if (bpf_map_lookup_elem(g.lost_fd, &zero, vals))
		return 0;
	for (int i = 0; i < g.ncpus; i++)
		sum += vals[i];
	return sum;
}

/*
 * Put a marker in the ring (the ioctl fails with EBADF after the tracepoint
 * ran) and consume up to it.  Returns false if it did not show up in time,
 * which only happens if the ring was full (the marker is then counted lost).
 */
static bool mark_and_wait(uint64_t token)
{
	uint64_t deadline = now_ns() + (uint64_t)MARK_TIMEOUT_MS * 1000000u;

	g.awaiting = true;
	g.await_token = token;
	g.mark_seen = false;
	syscall(SYS_ioctl, -1, FUSECERT_IOC_MARK, (unsigned long)token);
	/* Fast path: the record is committed before the ioctl returns. */
	ring_buffer__consume(g.rb);
	while (!g.mark_seen) {
		uint64_t t = now_ns();

		if (t >= deadline)
			break;
		ring_buffer__poll(g.rb, 10);
	}
	g.awaiting = false;
	return g.mark_seen;
}

static void load_and_attach(void)
{
	LIBBPF_OPTS(bpf_object_open_opts, oo, .object_name = "fusecert_replies");
	struct bpf_program *prog;
	struct bpf_map *map;
	int err;

	libbpf_set_print(libbpf_print);
	g.obj = bpf_object__open_mem(fusecert_replies_bpf,
				     (size_t)(fusecert_replies_bpf_end - fusecert_replies_bpf), &oo);
	if (!g.obj)
		die("opening the embedded BPF object: %s", strerror(errno));

	err = bpf_object__load(g.obj);
	if (err) {
		const char *call = strstr(g.libbpf_msg, "failed to create") ? "BPF_MAP_CREATE" : "BPF_PROG_LOAD";

		if (err == -EPERM || err == -EACCES) {
			if (strstr(g.libbpf_msg, "prog '") && !strstr(g.libbpf_msg, "trivial"))
				die("bpf(%s): %s (verifier rejected: %s; FUSECERT_REPLIES_VERBOSE=1 shows the log)",
				    call, strerror(-err), g.libbpf_msg);
			die("bpf(%s): %s (run as root)", call, strerror(-err));
		}
		die("bpf(%s): %s (%s)", call, strerror(-err), g.libbpf_msg[0] ? g.libbpf_msg : "libbpf gave no detail");
	}

	map = bpf_object__find_map_by_name(g.obj, "config");
	g.config_fd = map ? bpf_map__fd(map) : -1;
	map = bpf_object__find_map_by_name(g.obj, "lost");
	g.lost_fd = map ? bpf_map__fd(map) : -1;
	map = bpf_object__find_map_by_name(g.obj, "servers");
	g.servers_fd = map ? bpf_map__fd(map) : -1;
	g.ncpus = libbpf_num_possible_cpus();
	if (g.config_fd < 0 || g.lost_fd < 0 || g.servers_fd < 0 || g.ncpus <= 0)
		die("embedded BPF object lacks its maps");
	g.cfg.ncpus = (uint32_t)g.ncpus;
	push_config();

	/* Links are fds: the kernel detaches everything when this process exits. */
	bpf_object__for_each_program(prog, g.obj) {
		const char *sec = bpf_program__section_name(prog);
		const char *tp = strchr(sec, '/') ? strchr(sec, '/') + 1 : sec;

		/* FUSECERT_REPLIES_SKIP=name,...: leave programs unattached (bench/evidence-breakdown.ts) */
		const char *skip = getenv("FUSECERT_REPLIES_SKIP");
		const char *pn = bpf_program__name(prog);
		if (skip && strstr(skip, pn))
			continue;
		if (!bpf_program__attach(prog)) {
			err = errno;
			/* fcr_opt_*: a syscall this kernel has no tracepoint for is one the servers cannot make */
			if (err == ENOENT && !strncmp(pn, "fcr_opt_", 8))
				continue;
			/* libbpf reads the tracepoint id from tracefs (or its debugfs mirror). */
			if (err == ENOENT && access("/sys/kernel/tracing/events", F_OK) &&
			    access("/sys/kernel/debug/tracing/events", F_OK))
				die("tracepoint %s: tracefs is not mounted (/sys/kernel/tracing)", tp);
			if (err == ENOENT)
				die("tracepoint %s is missing (no events/%s in tracefs)", tp, tp);
			die("attaching tracepoint %s: %s", tp, strerror(err));
		}
	}

	map = bpf_object__find_map_by_name(g.obj, "rb");
	g.rb = map ? ring_buffer__new(bpf_map__fd(map), on_record, NULL, NULL) : NULL;
	if (!g.rb)
		die("ring buffer: %s", strerror(errno));

	/*
	 * Learn our tgid as the BPF side sees it (the init pid namespace, which
	 * need not be ours) with a random-token marker, then accept markers from
	 * that tgid only, so other instances' flushes cannot end ours.  It also
	 * proves the tracepoint -> ring -> loader path works before `ready`.
	 */
	uint64_t token;

	if (getrandom(&token, sizeof(token), 0) != sizeof(token))
		token = now_ns() ^ ((uint64_t)getpid() << 32);
	if (!mark_and_wait(token))
		die("tracepoint syscalls/sys_exit_ioctl: calibration marker never reached the ring");
	g.cfg.mark_tgid = g.mark_tgid;
	push_config();
}

/* ---- commands ---- */

static bool parse_u64(const char *s, uint64_t max, uint64_t *v)
{
	char *end;

	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	unsigned long long x = strtoull(s, &end, 10);

	if (errno || *end || x > max)
		return false;
	*v = x;
	return true;
}

static void command(char *line)
{
	uint64_t v;

	if (!strncmp(line, "conn ", 5)) {
		if (!parse_u64(line + 5, UINT32_MAX, &v)) {
			say("error bad argument\n");
			return;
		}
		g.cfg.connection = (uint32_t)v;
		push_config();
		say("ok conn %" PRIu64 "\n", v);
	} else if (!strncmp(line, "pid ", 4)) {
		uint8_t one = 1;
		uint32_t pid;

		if (!parse_u64(line + 4, UINT32_MAX, &v) || v == 0) {
			say("error bad argument\n");
			return;
		}
		pid = (uint32_t)v;
		if (bpf_map_update_elem(g.servers_fd, &pid, &one, BPF_ANY)) {
			say("error pid %" PRIu64 ": %s\n", v, strerror(errno));
			return;
		}
		if (!g.cfg.by_pid) {
			g.cfg.by_pid = 1;
			push_config();
		}
		say("ok pid %" PRIu64 "\n", v);
	} else if (!strncmp(line, "flush ", 6)) {
		if (!parse_u64(line + 6, UINT64_MAX, &v)) {
			say("error bad argument\n");
			return;
		}
		/* A marker that never arrived was lost in a full ring: lost= says so. */
		mark_and_wait(v);
		/*
		 * The records kept since the last flush become text now, in the order of their times
		 * (staged records reach the ring in batches, later than other CPUs' records), written
		 * in pieces.
		 */
		size_t count = 0, cap = 0;
		struct kept *order = NULL;

		for (size_t at = 0; at + sizeof(uint32_t) <= g.raw.len;) {
			uint32_t n;

			memcpy(&n, g.raw.p + at, sizeof(n));
			if (at + sizeof(n) + n > g.raw.len)
				break;
			if (count == cap) {
				size_t ncap = cap ? cap * 2 : 4096;
				struct kept *p = realloc(order, ncap * sizeof(*order));

				if (!p) {
					g.dropped++; /* counted: the records from here on are not printed */
					break;
				}
				order = p;
				cap = ncap;
			}
			order[count].ts = record_time(g.raw.p + at + sizeof(n), n);
			order[count++].at = at;
			at += sizeof(n) + n;
		}
		qsort(order, count, sizeof(*order), by_time);
		for (size_t i = 0; i < count; i++) {
			uint32_t n;

			memcpy(&n, g.raw.p + order[i].at, sizeof(n));
			format_record(g.raw.p + order[i].at + sizeof(n), n);
			if (g.txt.len > (1u << 20)) {
				write_all(g.txt.p, g.txt.len);
				g.txt.len = 0;
			}
		}
		free(order);
		buf_release(&g.raw);
		char tail[96];
		int n = snprintf(tail, sizeof(tail), "flushed %" PRIu64 " lost=%" PRIu64 "\n", v,
				 ring_lost() + g.dropped);

		write_all(g.txt.p, g.txt.len);
		write_all(tail, (size_t)n);
		buf_release(&g.txt);
	} else if (line[0]) {
		say("error unknown command\n");
	}
}

/* Split stdin into lines; returns false at EOF. */
static bool read_commands(void)
{
	static char buf[4096];
	static size_t len;
	static bool overlong; /* discarding the rest of a too-long line */
	ssize_t n = read(STDIN_FILENO, buf + len, sizeof(buf) - len);

	if (n < 0)
		return errno == EINTR || errno == EAGAIN;
	if (n == 0)
		return false;
	len += (size_t)n;
	for (;;) {
		char *nl = memchr(buf, '\n', len);

		if (!nl) {
			if (len == sizeof(buf)) { /* no command is this long */
				len = 0;
				overlong = true;
			}
			return true;
		}
		*nl = '\0';
		if (nl > buf && nl[-1] == '\r')
			nl[-1] = '\0';
		if (overlong) {
			overlong = false;
			say("error unknown command\n");
		} else {
			command(buf);
		}
		size_t used = (size_t)(nl + 1 - buf);

		memmove(buf, nl + 1, len - used);
		len -= used;
	}
}

static void usage(FILE *f)
{
	fputs("usage: " PROG " [--connection N]\n"
	      "  N: the FUSE connection (kernel dev_t, as in /sys/fs/fuse/connections/N); 0 = not known yet\n"
	      "stdin commands: conn N | pid N | flush TOKEN   (see README.md)\n",
	      f);
}

int main(int argc, char **argv)
{
	sigset_t sigs;
	int sigfd;

	for (int i = 1; i < argc; i++) {
		uint64_t v;
		const char *val = NULL;

		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage(stdout);
			return 0;
		} else if (!strcmp(argv[i], "--connection") && i + 1 < argc) {
			val = argv[++i];
		} else if (!strncmp(argv[i], "--connection=", 13)) {
			val = argv[i] + 13;
		} else {
			usage(stderr);
			die("bad argument '%s'", argv[i]);
		}
		if (!parse_u64(val, UINT32_MAX, &v))
			die("bad connection number '%s'", val);
		g.cfg.connection = (uint32_t)v;
	}
	g.verbose = getenv("FUSECERT_REPLIES_VERBOSE") && *getenv("FUSECERT_REPLIES_VERBOSE");

	/* Die with the parent even if it cannot close our stdin (SIGKILL). */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigprocmask(SIG_BLOCK, &sigs, NULL);
	sigfd = signalfd(-1, &sigs, SFD_CLOEXEC);
	if (sigfd < 0)
		die("signalfd: %s", strerror(errno));

	load_and_attach();
	say("ready\n");

	struct pollfd pfd[3] = {
		{.fd = STDIN_FILENO, .events = POLLIN},
		{.fd = sigfd, .events = POLLIN},
		{.fd = ring_buffer__epoll_fd(g.rb), .events = POLLIN},
	};

	for (;;) {
		/* The timeout only bounds how stale the in-memory lines get. */
		if (poll(pfd, 3, 100) < 0 && errno != EINTR)
			die("poll: %s", strerror(errno));
		ring_buffer__consume(g.rb);
		if (pfd[1].revents)
			return 0; /* SIGTERM or SIGINT */
		if (pfd[0].revents & (POLLIN | POLLHUP | POLLERR))
			if (!read_commands())
				return 0; /* stdin EOF: whoever drove us is gone */
	}
}
