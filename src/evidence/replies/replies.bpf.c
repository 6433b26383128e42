// SPDX-License-Identifier: MIT OR GPL-2.0
/*
 * fusecert-replies, BPF side: sees what a FUSE server writes back to
 * /dev/fuse (replies) and the arguments of its backing-file ioctls.
 *
 * Only tracepoints are used (kprobes/fentry are not available where this
 * runs). The kernel's side of every request comes from the raw tracepoints
 * fuse_request_send/end (the struct fuse_req, CO-RE). A reply the server wrote
 * is looked at only when the kernel refused it: at write/writev exit with a
 * negative result, the syscall's arguments are taken from the task's saved
 * registers and the first 16 bytes must be a fuse_out_header whose len equals
 * the syscall's byte count. Nothing here knows which file the fd is; the len
 * match and the writer being a server process make a write "a reply".
 *
 * No vmlinux.h: the tracepoint records are declared by hand from
 * /sys/kernel/tracing/events/<group>/<event>/format.
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

#include "replies.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

/* ---- tracepoint records (offsets checked against the format files) ---- */

/* The 8-byte common header (type, flags, preempt_count, pid) is not readable by BPF. */
struct tp_fuse_request_send {
	__u64 common;
	__u32 connection; /* dev_t, @8 */
	__u32 pad;
	__u64 unique; /* @16 */
	__u32 opcode; /* @24 */
	__u32 len;    /* @28 */
};

struct tp_fuse_request_end {
	__u64 common;
	__u32 connection; /* @8 */
	__u32 pad;
	__u64 unique; /* @16 */
	__u32 len;    /* @24 */
	__s32 error;  /* @28 */
};

struct tp_sys_exit {
	__u64 common;
	__s32 syscall_nr; /* @8 */
	__u32 pad;
	__s64 ret; /* @16 */
};

_Static_assert(__builtin_offsetof(struct tp_fuse_request_send, unique) == 16, "send.unique");
_Static_assert(__builtin_offsetof(struct tp_fuse_request_send, opcode) == 24, "send.opcode");
_Static_assert(__builtin_offsetof(struct tp_fuse_request_end, error) == 28, "end.error");
_Static_assert(__builtin_offsetof(struct tp_sys_exit, ret) == 16, "exit.ret");

/* ---- user-memory layouts ---- */

struct fuse_out_header {
	__u32 len;
	__s32 error;
	__u64 unique;
};

struct user_iovec {
	__u64 base;
	__u64 len;
};

struct fuse_backing_map {
	__s32 fd;
	__u32 flags;
	__u64 padding;
};

/* ---- maps ---- */

struct req_info {
	__u32 opcode;
	__u32 connection;
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 * 1024 * 1024);
} rb SEC(".maps");

/* Records that could not be put in the ring (it was full). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} lost SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct config);
} config SEC(".maps");

/*
 * FUSE_INIT requests of every connection: the INIT reply comes before
 * anyone can know the connection number.  Entries are never deleted on a
 * reply because every connection numbers its requests from the same start,
 * so two mounts' INITs can share a unique; LRU eviction bounds the map.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 256);
	__type(key, __u64);
	__type(value, struct req_info);
} inits SEC(".maps");

/*
 * The server processes (tgids) of the connection, set by the loader's `pid`
 * command: a write of theirs that looks like a reply (len == count) but names
 * no request we know is still recorded (opcode 0), so a reply with a wrong
 * unique is seen.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u8);
} servers SEC(".maps");

/*
 * A reply record is ~550 bytes: too big for the 512-byte BPF stack, so it is
 * assembled here and then copied into the ring with only the bytes in use.
 * Tracing programs do not nest on a CPU, so one slot per CPU is enough.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct rec_reply);
} scratch SEC(".maps");

/*
 * Per-CPU stages (see struct rec_batch): kernel-side and ioctl records are built in a slot of
 * their CPU's stage and go into the ring eight at a time. `busy` is taken with a compare-and-swap,
 * so a program that finds it taken (it preempted another on this CPU, or a marker is draining
 * it from another CPU) writes its record to the ring directly instead; the consumer orders
 * records by their times.
 */
struct stage {
	__u32 busy;
	__u32 pad;
	struct rec_batch b;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct stage);
} stages SEC(".maps");

/* ---- helpers ---- */

/*
 * Records are submitted without waking the loader, which reads the ring every 100 ms and at a
 * flush: a wakeup per record made the loader run (and compete for the CPUs) ten times per
 * open/close cycle of the workload. Once a quarter of the ring waits, the record wakes it.
 */
#define RB_WAKE_AT (1024 * 1024)
static __always_inline __u64 rb_flags(void)
{
	return bpf_ringbuf_query(&rb, BPF_RB_AVAIL_DATA) > RB_WAKE_AT ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
}

/* Hide a value's provenance from clang so it cannot drop a clamp the verifier needs. */
#define opaque(v) asm volatile("" : "+r"(v))

static __always_inline void count_lost(void)
{
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(&lost, &zero);

	if (n)
		*n += 1; /* per-CPU slot, no nesting: no atomics needed */
}

static __always_inline void count_lost_n(__u32 n)
{
	__u32 zero = 0;
	__u64 *v = bpf_map_lookup_elem(&lost, &zero);

	if (v)
		__sync_fetch_and_add(v, n); /* a marker may drain another CPU's stage */
}

/* Put a stage's records into the ring as one batch. The caller holds st->busy. */
static __always_inline void stage_drain(struct stage *st)
{
	__u32 n = st->b.n;

	opaque(n);
	if (n > STAGE_SLOTS)
		n = STAGE_SLOTS;
	if (n == 0)
		return;
	st->b.kind = REC_BATCH;
	st->b.n = n;
	if (bpf_ringbuf_output(&rb, &st->b, REC_BATCH_HEAD + (__u64)n * STAGE_SLOT, rb_flags()))
		count_lost_n(n);
	st->b.n = 0;
}

/* A free slot of this CPU's stage, taken (*out is the stage to give to stage_put), or NULL. */
static __always_inline void *stage_take(struct stage **out)
{
	__u32 zero = 0;
	struct stage *st = bpf_map_lookup_elem(&stages, &zero);
	__u32 n;

	if (!st || __sync_val_compare_and_swap(&st->busy, 0, 1) != 0)
		return NULL;
	if (st->b.n >= STAGE_SLOTS)
		stage_drain(st);
	n = st->b.n;
	opaque(n);
	n &= STAGE_SLOTS - 1;
	*out = st;
	return st->b.slot[n];
}

/* The record in the slot stage_take gave is complete: count it, drain a full stage, let go. */
static __always_inline void stage_put(struct stage *st)
{
	st->b.n += 1;
	if (st->b.n >= STAGE_SLOTS)
		stage_drain(st);
	__sync_lock_test_and_set(&st->busy, 0);
}

/* bpf_loop callback of a marker: drain CPU `cpu`'s stage unless a program there holds it. */
static long drain_cpu(__u64 cpu, void *ctx)
{
	__u32 zero = 0;
	struct stage *st = bpf_map_lookup_percpu_elem(&stages, &zero, (__u32)cpu);

	(void)ctx;
	if (!st)
		return 1; /* past the last CPU */
	if (__sync_val_compare_and_swap(&st->busy, 0, 1) == 0) {
		stage_drain(st);
		__sync_lock_test_and_set(&st->busy, 0);
	}
	return 0;
}

static __always_inline struct config *get_config(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&config, &zero);
}

/*
 * The registers a syscall was entered with, saved on the task's kernel stack: at a sys_exit
 * tracepoint they still hold the arguments (x86-64: fd, buffer, count in di, si, dx). Reading
 * the arguments at exit means one program per syscall instead of an entry program that saves
 * them for the exit's, and nothing to do for the writes the kernel took.
 */
struct pt_regs___fc {
	unsigned long di;
	unsigned long si;
	unsigned long dx;
} __attribute__((preserve_access_index));

struct task_struct;

static __always_inline void syscall_args(__u64 *a0, __u64 *a1, __u64 *a2)
{
	struct pt_regs___fc *regs = (struct pt_regs___fc *)bpf_task_pt_regs(bpf_get_current_task_btf());

	*a0 = BPF_CORE_READ(regs, di);
	*a1 = BPF_CORE_READ(regs, si);
	*a2 = BPF_CORE_READ(regs, dx);
}

/*
 * Decide whether a refused write carrying header @h and @count bytes in total is a reply of
 * the tracked connection; if so return the scratch record with everything but the payload
 * filled in. Which request a unique names is left to the reader, which has every request of
 * the connection: the opcode here is known only for INIT replies, which come before anyone
 * knows the connection, and is 0 otherwise.
 */
static __always_inline struct rec_reply *match_reply(const struct fuse_out_header *h, __u64 count, __u64 fd,
						     __s64 ret)
{
	struct config *cfg = get_config();
	struct req_info *ri;
	struct rec_reply *rec;
	__u32 opcode, conn;
	__u64 unique = h->unique;
	__u32 zero = 0;
	int by_pid = cfg && cfg->by_pid;

	if (h->len != count)
		return NULL;
	ri = bpf_map_lookup_elem(&inits, &unique);
	if (ri && (!by_pid || !cfg->connection || ri->connection == cfg->connection)) {
		opcode = ri->opcode;
		conn = ri->connection;
	} else if (by_pid) {
		/* a server's refused write shaped like a reply: its unique says which request */
		opcode = 0;
		conn = cfg->connection;
	} else {
		return NULL;
	}

	rec = bpf_map_lookup_elem(&scratch, &zero);
	if (!rec)
		return NULL;
	__u64 pid_tgid = bpf_get_current_pid_tgid();

	rec->kind = REC_REPLY;
	rec->tid = (__u32)pid_tgid;
	rec->tgid = pid_tgid >> 32;
	rec->connection = conn;
	rec->ts_ns = bpf_ktime_get_ns();
	rec->unique = unique;
	rec->count = count;
	rec->opcode = opcode;
	rec->fd = (__u32)fd;
	rec->len = h->len;
	rec->error = h->error;
	rec->npayload = 0;
	rec->wret = (__s32)ret;
	return rec;
}

static __always_inline void emit_reply(struct rec_reply *rec, __u64 npayload)
{
	opaque(npayload);
	if (npayload > REPLY_PAYLOAD_MAX)
		npayload = REPLY_PAYLOAD_MAX;
	rec->npayload = npayload;
	if (bpf_ringbuf_output(&rb, rec, REC_REPLY_FIXED_SIZE + npayload, rb_flags()))
		count_lost();
}

/*
 * Before `pid` every writer counts (INIT replies come from whoever mounted); after it, only
 * the servers' writes (one hash lookup).
 */
static __always_inline int writer_wanted(void)
{
	struct config *cfg = get_config();
	__u32 tgid;

	if (!cfg || !cfg->by_pid)
		return 1;
	tgid = bpf_get_current_pid_tgid() >> 32;
	return bpf_map_lookup_elem(&servers, &tgid) != NULL;
}

/*
 * A reply is recorded only when the kernel refused it (the write failed: a unique no request
 * has, a bad length, an error out of range). The kernel's own record of a reply it took is the
 * `end` record. The server's buffer is read at exit: the write was its thread's own call, so
 * the memory is as it was handed over.
 */
SEC("tracepoint/syscalls/sys_exit_write")
int fcr_write_exit(struct tp_sys_exit *ctx)
{
	__s64 ret = ctx->ret;
	__u64 fd, ubuf, count, n;
	struct fuse_out_header h;
	struct rec_reply *rec;

	if (ret >= 0 || !writer_wanted())
		return 0;
	syscall_args(&fd, &ubuf, &count);
	if (count < sizeof(h) || count > 0xffffffffULL)
		return 0;
	if (bpf_probe_read_user(&h, sizeof(h), (const void *)ubuf))
		return 0;
	rec = match_reply(&h, count, fd, ret);
	if (!rec)
		return 0;

	n = count - sizeof(h);
	opaque(n);
	if (n > REPLY_PAYLOAD_MAX)
		n = REPLY_PAYLOAD_MAX;
	if (bpf_probe_read_user(rec->payload, n, (const void *)(ubuf + sizeof(h))))
		n = 0; /* not resident/readable: report the header alone */
	emit_reply(rec, n);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_writev")
int fcr_writev_exit(struct tp_sys_exit *ctx)
{
	__s64 ret = ctx->ret;
	__u64 fd, vec, vlen;
	struct user_iovec iov[REPLY_MAX_IOV_LEN] = {};
	struct fuse_out_header h;
	struct rec_reply *rec;
	__u64 nv, total = 0, off = 0;
	__u32 i;

	if (ret >= 0 || !writer_wanted())
		return 0;
	syscall_args(&fd, &vec, &vlen);
	if (vlen == 0 || vlen > 1024 /* UIO_MAXIOV: the kernel refuses more */)
		return 0;
	nv = vlen < REPLY_MAX_IOV_LEN ? vlen : REPLY_MAX_IOV_LEN;
	opaque(nv);
	if (nv > REPLY_MAX_IOV_LEN)
		nv = REPLY_MAX_IOV_LEN;
	/* Read only the iovecs that exist: the array may end at a page boundary. */
	if (bpf_probe_read_user(iov, nv * sizeof(iov[0]), (const void *)vec))
		return 0;
#pragma unroll
	for (i = 0; i < REPLY_MAX_IOV_LEN; i++)
		if (i < nv)
			total += iov[i].len;

	/* A header split across iovecs is not recognised (no known server does that). */
	if (iov[0].len < sizeof(h))
		return 0;
	if (bpf_probe_read_user(&h, sizeof(h), (const void *)iov[0].base))
		return 0;
	rec = match_reply(&h, total, fd, ret);
	if (!rec)
		return 0;

	/*
	 * Payload: the rest of iov[0] (servers writing one buffer) then the
	 * following segments (libfuse-style header-alone iov[0]), in order.
	 */
#pragma unroll
	for (i = 0; i < REPLY_MAX_IOV_DATA; i++) {
		__u64 src, avail, room, n;

		if (i >= nv)
			break;
		src = iov[i].base;
		avail = iov[i].len;
		if (i == 0) {
			src += sizeof(h);
			avail -= sizeof(h);
		}
		opaque(off);
		if (off >= REPLY_PAYLOAD_MAX)
			break;
		room = REPLY_PAYLOAD_MAX - off;
		n = avail < room ? avail : room;
		opaque(n);
		if (n > REPLY_PAYLOAD_MAX)
			n = REPLY_PAYLOAD_MAX;
		if (n == 0)
			continue;
		if (bpf_probe_read_user(rec->payload + off, n, (const void *)src))
			break; /* keep what was gathered so far */
		off += n;
	}
	emit_reply(rec, off);
	return 0;
}

/* ---- backing ioctls and markers ---- */

/*
 * One program at exit: the command, the argument pointer and the result are all there, and
 * the argument is still as the server passed it (its thread's own call). The time recorded is
 * the exit's.
 */
SEC("tracepoint/syscalls/sys_exit_ioctl")
int fcr_ioctl_exit(struct tp_sys_exit *ctx)
{
	__u64 fd, cmd64, arg;
	__u32 cmd;
	__u64 pid_tgid = bpf_get_current_pid_tgid();

	syscall_args(&fd, &cmd64, &arg);
	cmd = (__u32)cmd64;
	if (cmd == FUSECERT_IOC_MARK) {
		struct config *cfg = get_config();
		struct rec_mark m = {.kind = REC_MARK, .tgid = pid_tgid >> 32, .token = arg};

		if (!cfg || (cfg->mark_tgid && cfg->mark_tgid != m.tgid))
			return 0;
		/* every CPU's staged records go before the marker */
		bpf_loop(cfg->ncpus, drain_cpu, NULL, 0);
		if (bpf_ringbuf_output(&rb, &m, sizeof(m), 0))
			count_lost();
		return 0;
	}
	if (cmd != FUSE_DEV_IOC_BACKING_OPEN && cmd != FUSE_DEV_IOC_BACKING_CLOSE)
		return 0;
	struct config *cfg = get_config();
	__u32 tgid = pid_tgid >> 32;

	struct rec_ioctl r = {
		.kind = REC_IOCTL,
		.tid = (__u32)pid_tgid,
		.tgid = pid_tgid >> 32,
		.fd = (__u32)fd,
		.cmd = cmd,
		.ret = ctx->ret,
		.server = cfg && cfg->by_pid && bpf_map_lookup_elem(&servers, &tgid) != NULL,
	};
	r.exit_ns = bpf_ktime_get_ns();
	r.enter_ns = r.exit_ns;
	if (cmd == FUSE_DEV_IOC_BACKING_OPEN) {
		struct fuse_backing_map map;

		if (bpf_probe_read_user(&map, sizeof(map), (const void *)arg)) {
			r.fault = 1;
		} else {
			r.a = (__u32)map.fd;
			r.b = map.flags;
			r.c = map.padding;
		}
	} else {
		__u32 id;

		if (bpf_probe_read_user(&id, sizeof(id), (const void *)arg))
			r.fault = 1;
		else
			r.a = id;
	}
	struct stage *st = NULL;
	void *slot = stage_take(&st);

	if (slot) {
		__builtin_memcpy(slot, &r, sizeof(r));
		stage_put(st);
	} else if (bpf_ringbuf_output(&rb, &r, sizeof(r), rb_flags())) {
		count_lost();
	}
	return 0;
}

/* ---- the servers' syncs and forks ---- */

/*
 * A server's fsync/fdatasync/syncfs/sync at its exit, straight into the ring (rare calls). Only
 * once `pid` named the servers, and only theirs: a session that has these records needs no
 * tracefs instance on the syscall tracepoints beside this tracer (that pair cost ~7 % of an
 * open/close cycle, the tracer alone ~8 %).
 */
static __always_inline int sync_exit(struct tp_sys_exit *ctx, __u32 call)
{
	struct config *cfg = get_config();
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32;
	__u64 fd = 0, a1, a2;

	if (!cfg || !cfg->by_pid || !bpf_map_lookup_elem(&servers, &tgid))
		return 0;
	if (call != SYNC_SYNC)
		syscall_args(&fd, &a1, &a2);
	struct rec_sync r = {
		.kind = REC_SYNC,
		.tid = (__u32)pid_tgid,
		.tgid = tgid,
		.call = call,
		.ts_ns = bpf_ktime_get_ns(),
		.ret = ctx->ret,
		.fd = fd,
	};
	if (bpf_ringbuf_output(&rb, &r, sizeof(r), rb_flags()))
		count_lost();
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_fsync")
int fcr_opt_fsync_exit(struct tp_sys_exit *ctx)
{
	return sync_exit(ctx, SYNC_FSYNC);
}

SEC("tracepoint/syscalls/sys_exit_fdatasync")
int fcr_opt_fdatasync_exit(struct tp_sys_exit *ctx)
{
	return sync_exit(ctx, SYNC_FDATASYNC);
}

SEC("tracepoint/syscalls/sys_exit_syncfs")
int fcr_opt_syncfs_exit(struct tp_sys_exit *ctx)
{
	return sync_exit(ctx, SYNC_SYNCFS);
}

SEC("tracepoint/syscalls/sys_exit_sync")
int fcr_opt_sync_exit(struct tp_sys_exit *ctx)
{
	return sync_exit(ctx, SYNC_SYNC);
}

struct task_struct___fc {
	int pid;
	int tgid;
} __attribute__((preserve_access_index));

/*
 * A process a server forks is a server too (its backing ioctls and syncs count, as the tracefs
 * session's thread follower counts them); a server process that exits is forgotten, so a pid the
 * kernel hands out again is someone else. Threads share their process's tgid: nothing to do.
 */
SEC("tp_btf/sched_process_fork")
int BPF_PROG(fcr_fork, struct task_struct___fc *parent, struct task_struct___fc *child)
{
	__u32 ptgid = parent->tgid, ctgid = child->tgid;
	__u8 one = 1;

	if (ctgid == ptgid || (__u32)child->pid != ctgid || !bpf_map_lookup_elem(&servers, &ptgid))
		return 0;
	bpf_map_update_elem(&servers, &ctgid, &one, BPF_NOEXIST);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(fcr_exit, struct task_struct___fc *task)
{
	__u32 tgid = task->tgid;

	if ((__u32)task->pid == tgid)
		bpf_map_delete_elem(&servers, &tgid);
	return 0;
}

/* ---- the kernel's side: struct fuse_req at send and at end (raw tracepoints, CO-RE) ----
 *
 * The tracefs format of fuse_request_send/end carries only connection, unique,
 * opcode, len and error. The raw tracepoints hand over the struct fuse_req, so
 * the nodeid, the first input argument and the output arguments the kernel
 * parsed can be read. The types below name only the fields used; libbpf
 * relocates their offsets against the running kernel's BTF
 * (/sys/kernel/btf/vmlinux), so they hold on any kernel that has these fields.
 */
struct fuse_in_header___fc {
	__u32 len;
	__u32 opcode;
	__u64 unique;
	__u64 nodeid;
	__u32 uid;
	__u32 gid;
	__u32 pid;
} __attribute__((preserve_access_index));

struct fuse_out_header___fc {
	__u32 len;
	__s32 error;
	__u64 unique;
} __attribute__((preserve_access_index));

struct fuse_in_arg___fc {
	unsigned int size;
	const void *value;
} __attribute__((preserve_access_index));

struct fuse_arg___fc {
	unsigned int size;
	void *value;
} __attribute__((preserve_access_index));

struct fuse_args___fc {
	__u8 in_numargs;
	__u8 out_numargs;
	struct fuse_in_arg___fc in_args[4];
	struct fuse_arg___fc out_args[2];
} __attribute__((preserve_access_index));

struct fuse_conn___fc {
	__u32 dev;
} __attribute__((preserve_access_index));

struct fuse_mount___fc {
	struct fuse_conn___fc *fc;
} __attribute__((preserve_access_index));

struct fuse_req___fc {
	struct fuse_args___fc *args;
	unsigned long flags;
	struct {
		struct fuse_in_header___fc h;
	} in;
	struct {
		struct fuse_out_header___fc h;
	} out;
	struct fuse_mount___fc *fm;
} __attribute__((preserve_access_index));

/*
 * FR_URING (6.14+, fs/fuse/fuse_i.h enum fuse_req_flag): set by fuse_uring_queue_fuse_req and
 * fuse_uring_queue_bq_req when the request is queued on a ring queue, never cleared. Its bit number
 * is relocated from the kernel's BTF; on a kernel without it there is no ring transport at all.
 * (req->ring_entry would not do: fuse_uring_commit_fetch clears it before the request ends.)
 */
enum fuse_req_flag___fc {
	FR_URING = 12,
};

static __always_inline __u32 transport_of(struct fuse_req___fc *req)
{
	__u64 bit;

	if (!bpf_core_enum_value_exists(enum fuse_req_flag___fc, FR_URING))
		return TRANSPORT_NONE;
	bit = bpf_core_enum_value(enum fuse_req_flag___fc, FR_URING);
	if (bit > 63)
		return TRANSPORT_UNKNOWN;
	return (req->flags >> bit) & 1 ? TRANSPORT_RING : TRANSPORT_DEV;
}

/* Output arguments are read only for replies whose arguments are structs in
 * kernel memory (not pages): the ones a diagnosis reads. */
static __always_inline int out_wanted(__u32 op)
{
	switch (op) {
	case 1:	 /* LOOKUP: fuse_entry_out */
	case 3:	 /* GETATTR: fuse_attr_out */
	case 4:	 /* SETATTR: fuse_attr_out */
	case 6:	 /* SYMLINK */
	case 8:	 /* MKNOD */
	case 9:	 /* MKDIR */
	case 13: /* LINK */
	case 14: /* OPEN: fuse_open_out */
	case 16: /* WRITE: fuse_write_out */
	case 26: /* INIT: fuse_init_out */
	case 27: /* OPENDIR: fuse_open_out */
	case 35: /* CREATE: fuse_entry_out, fuse_open_out */
	case 46: /* LSEEK: fuse_lseek_out */
	case 47: /* COPY_FILE_RANGE: fuse_write_out */
	case 51: /* TMPFILE: fuse_entry_out, fuse_open_out */
		return 1;
	}
	return 0;
}

static __always_inline __u32 read_arg(void *dst, __u32 cap, unsigned int size, const void *src)
{
	__u32 n = size;

	if (n > cap)
		n = cap;
	/* the barrier pins n to one register; the check after it bounds that register for the verifier */
	opaque(n);
	if (n > cap || n == 0 || !src)
		return 0;
	if (bpf_probe_read_kernel(dst, n, src))
		return 0;
	return n;
}

/*
 * tp_btf: the tracepoint's own argument, a BTF-typed pointer, so the fields of the request are
 * plain loads the verifier checks against the kernel's BTF (raw_tp needed one
 * bpf_probe_read_kernel per field, a dozen per request, which was most of the tracer's cost).
 * Only the argument buffers behind the untyped `value` pointers still need a probe read.
 */
/* The shared head of a kernel-side record, from the request and the current task. */
static __always_inline void fill_head(struct rec_head *h, __u32 kind, struct fuse_req___fc *req, __u32 conn, __u32 opcode,
				      __u64 unique)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();

	h->kind = kind;
	h->tid = (__u32)pid_tgid;
	h->tgid = pid_tgid >> 32;
	h->connection = conn;
	h->ts_ns = bpf_ktime_get_ns();
	h->unique = unique;
	h->nodeid = req->in.h.nodeid;
	h->opcode = opcode;
	h->transport = TRANSPORT_UNKNOWN;
}

SEC("tp_btf/fuse_request_send")
int BPF_PROG(fcr_kernel_send, struct fuse_req___fc *req)
{
	__u32 conn = req->fm->fc->dev;
	__u32 opcode = req->in.h.opcode;
	__u64 unique = req->in.h.unique;
	struct req_info ri = {.opcode = opcode, .connection = conn};
	struct config *cfg = get_config();
	struct fuse_args___fc *args;
	struct stage *st = NULL;
	struct rec_kreq *r;

	/* an INIT reply names its connection (see match_reply) */
	if (opcode == FUSE_OP_INIT)
		bpf_map_update_elem(&inits, &unique, &ri, BPF_ANY);
	else if (!(cfg && cfg->connection && cfg->connection == conn))
		return 0;
	r = stage_take(&st);
	if (!r)
		r = bpf_ringbuf_reserve(&rb, sizeof(*r), 0);
	if (!r) {
		count_lost();
		return 0;
	}
	fill_head(&r->h, REC_KREQ, req, conn, opcode, unique);
	r->pid = req->in.h.pid;
	r->len = req->in.h.len;
	r->narg = 0;
	args = req->args;
	if (args && args->in_numargs > 0)
		r->narg = read_arg(r->arg, KREQ_ARG_MAX, args->in_args[0].size, args->in_args[0].value);
	if (st)
		stage_put(st);
	else
		bpf_ringbuf_submit(r, rb_flags());
	return 0;
}

SEC("tp_btf/fuse_request_end")
int BPF_PROG(fcr_kernel_end, struct fuse_req___fc *req)
{
	__u32 conn = req->fm->fc->dev;
	__u32 opcode = req->in.h.opcode;
	__u64 unique = req->in.h.unique;
	struct config *cfg = get_config();
	struct fuse_args___fc *args;
	struct stage *st = NULL;
	struct rec_kend *r;
	__u8 nout;

	if (!(cfg && cfg->connection && cfg->connection == conn) && opcode != FUSE_OP_INIT)
		return 0;
	r = stage_take(&st);
	if (!r)
		r = bpf_ringbuf_reserve(&rb, sizeof(*r), 0);
	if (!r) {
		count_lost();
		return 0;
	}
	fill_head(&r->h, REC_KEND, req, conn, opcode, unique);
	r->h.transport = transport_of(req);
	r->error = req->out.h.error;
	r->len = req->out.h.len;
	r->nout0 = 0;
	r->nout1 = 0;
	r->size0 = 0;
	r->size1 = 0;
	args = req->args;
	if (args && r->error == 0) {
		nout = args->out_numargs;
		if (nout > 0)
			r->size0 = args->out_args[0].size;
		if (nout > 1)
			r->size1 = args->out_args[1].size;
	}
	if (args && r->error == 0 && out_wanted(opcode)) {
		nout = args->out_numargs;
		if (nout > 0)
			r->nout0 = read_arg(r->out0, KEND_OUT_MAX, args->out_args[0].size, args->out_args[0].value);
		if (nout > 1)
			r->nout1 = read_arg(r->out1, KEND_OUT_MAX, args->out_args[1].size, args->out_args[1].value);
	}
	if (st)
		stage_put(st);
	else
		bpf_ringbuf_submit(r, rb_flags());
	return 0;
}
