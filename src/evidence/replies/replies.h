/* SPDX-License-Identifier: MIT OR GPL-2.0 */
/*
 * Records shared by replies.bpf.c (producer) and replies.c (consumer).
 * Every record starts with a __u32 kind so the consumer can tell them apart.
 * They travel through one ring buffer; the kernel-side and ioctl records are
 * first staged per CPU and go into the ring in batches (REC_BATCH), so the
 * consumer orders what it read by the records' times.
 */
#ifndef FUSECERT_REPLIES_H
#define FUSECERT_REPLIES_H

#include <linux/types.h>

#define REPLY_PAYLOAD_MAX 256 /* payload bytes (after fuse_out_header) kept per reply */
#define REPLY_MAX_IOV_LEN 8   /* iovecs summed for the writev length check */
/* iovecs the payload is gathered from: the rest of iov[0], then up to 4 more */
#define REPLY_MAX_IOV_DATA 5

#define FUSE_OP_INIT 26
#define FUSE_DEV_IOC_BACKING_OPEN 0x4010e501u
#define FUSE_DEV_IOC_BACKING_CLOSE 0x4004e502u
/* Not a real ioctl: the loader issues it on fd -1 (EBADF) only to put a marker in the ring. */
#define FUSECERT_IOC_MARK 0xFC5E0001u

enum rec_kind {
	REC_REPLY = 1,
	REC_IOCTL = 2,
	REC_MARK = 3,
	REC_KREQ = 4,
	REC_KEND = 5,
	REC_BATCH = 6,
	REC_SYNC = 7,
};

/* Which call a REC_SYNC record is (the `sync` line names it). */
enum sync_call {
	SYNC_FSYNC = 0,
	SYNC_FDATASYNC = 1,
	SYNC_SYNCFS = 2,
	SYNC_SYNC = 3,
};

#define KREQ_ARG_MAX 96	 /* bytes of the request's first input argument kept */
#define KEND_OUT_MAX 128 /* bytes of each of the reply's first two output arguments kept */

/* Filter settings, written by the loader into the one-entry `config` array map. */
struct config {
	__u32 connection; /* kernel dev_t of the tracked connection; 0 = none yet */
	__u32 mark_tgid;  /* tgid (init pid namespace) whose marks count; 0 = any */
	__u32 by_pid;	  /* 1 once `pid` named the servers: only their writes are replies */
	__u32 ncpus;	  /* possible CPUs: the stages a marker drains */
};

struct rec_reply {
	__u32 kind;
	__u32 tid;
	__u32 tgid;
	__u32 connection;
	__u64 ts_ns;
	__u64 unique;
	__u64 count; /* bytes handed to write/writev */
	__u32 opcode;
	__u32 fd;
	__u32 len;	/* fuse_out_header.len */
	__s32 error;	/* fuse_out_header.error */
	__u32 npayload; /* bytes of payload[] that are valid (and sent) */
	__s32 wret;	/* what the write returned: only refused replies (< 0) are recorded */
	/*
	 * Twice the cap: the BPF gather loop writes at a variable offset
	 * (<= cap) a variable size (<= cap), and the verifier checks the sum of
	 * the two maxima. Only the first npayload (<= cap) bytes are sent.
	 */
	__u8 payload[2 * REPLY_PAYLOAD_MAX];
};
#define REC_REPLY_FIXED_SIZE __builtin_offsetof(struct rec_reply, payload)

struct rec_ioctl {
	__u32 kind;
	__u32 tid;
	__u32 tgid;
	__u32 fd;
	__u32 cmd;
	__u32 fault; /* 1: the argument could not be read */
	__u64 enter_ns; /* = exit_ns: the tracer sees the call at its exit only */
	__u64 exit_ns;
	__s64 ret;
	__u64 a; /* BACKING_OPEN: map.fd (s32); BACKING_CLOSE: id */
	__u64 b; /* BACKING_OPEN: map.flags */
	__u64 c; /* BACKING_OPEN: map.padding */
	__u32 server; /* 1: made by one of the servers (`pid`, or a process they forked since) */
	__u32 pad;
};

/*
 * A server's fsync, fdatasync, syncfs or sync, at its exit (RW-014: a FUSE_FSYNC must reach the
 * backing file): only the servers' calls are recorded.
 */
struct rec_sync {
	__u32 kind;
	__u32 tid;
	__u32 tgid;
	__u32 call; /* enum sync_call */
	__u64 ts_ns;
	__s64 ret;
	__u64 fd; /* the fd argument (none for sync) */
};

/* What the kernel-side records share: who, when, which request of which connection. */
struct rec_head {
	__u32 kind;
	__u32 tid;
	__u32 tgid;
	__u32 connection;
	__u64 ts_ns;
	__u64 unique;
	__u64 nodeid;
	__u32 opcode;
	/*
	 * At a request's end (rec_kend): which transport carried it, TRANSPORT_*; 0 in a rec_kreq
	 * (at send the kernel has not queued it on either yet). In the head's tail padding.
	 */
	__u32 transport;
};

#define TRANSPORT_UNKNOWN 0
#define TRANSPORT_DEV 1	 /* queued for read(2) on /dev/fuse (FR_URING clear) */
#define TRANSPORT_RING 2 /* queued on a FUSE-over-io_uring ring queue (FR_URING set) */
#define TRANSPORT_NONE 3 /* the kernel has no ring transport (no FR_URING in its BTF): /dev/fuse */

/*
 * A request as the kernel sent it (raw tracepoint fuse_request_send: the
 * struct fuse_req itself, read with CO-RE), so the nodeid and the first input
 * argument (fuse_open_in, fuse_release_in, ...) are known.
 */
struct rec_kreq {
	struct rec_head h;
	__u32 pid; /* fuse_in_header.pid: the process the request is for */
	__u32 narg;
	__u32 len; /* fuse_in_header.len */
	__u8 arg[KREQ_ARG_MAX];
};

/*
 * A request's end, with the reply as the kernel parsed it: the error it kept
 * and the output arguments it copied (whatever transport carried the reply).
 */
struct rec_kend {
	struct rec_head h;
	__s32 error;
	__u32 nout0;
	__u32 nout1;
	__u32 size0; /* out_args[i].size: for a variable-size reply (READ) the bytes the server sent */
	__u32 size1;
	__u32 len; /* fuse_out_header.len as the kernel kept it */
	__u8 out0[KEND_OUT_MAX];
	__u8 out1[KEND_OUT_MAX];
};

/*
 * Records staged on a CPU, put into the ring as one record when the stage is
 * full or a marker drains it: a ring reservation costs its lock (with
 * interrupts off) per record, about a microsecond each on a paravirtual
 * machine, which was most of the tracer's cost on an open/close workload.
 * Each slot holds one rec_kreq, rec_kend or rec_ioctl from its start.
 */
#define STAGE_SLOTS 8
#define STAGE_SLOT 328
struct rec_batch {
	__u32 kind; /* REC_BATCH */
	__u32 n;    /* slots in use */
	__u8 slot[STAGE_SLOTS][STAGE_SLOT];
};
#define REC_BATCH_HEAD __builtin_offsetof(struct rec_batch, slot)

struct rec_mark {
	__u32 kind;
	__u32 tgid;
	__u64 token;
};

_Static_assert(sizeof(struct rec_head) == 48, "transport sits in the head's padding");
_Static_assert(sizeof(struct rec_kreq) <= STAGE_SLOT, "rec_kreq fits a slot");
_Static_assert(sizeof(struct rec_kend) <= STAGE_SLOT, "rec_kend fits a slot");
_Static_assert(sizeof(struct rec_ioctl) <= STAGE_SLOT, "rec_ioctl fits a slot");

#endif
