/*
 * ptfs - the fusecert reference passthrough server.
 *
 * Mirrors a source directory through FUSE, speaking the kernel protocol on
 * /dev/fuse directly (no libfuse).  Regular files are opened in passthrough
 * mode: one backing id per inode, registered while the inode has passthrough
 * opens, with a per-open fallback to server-side I/O when the kernel refuses a
 * backing file.  Probe modes and deliberate defects (--defect) exist so that
 * fusecert can prove its clauses can fail.
 */

/* main.c: start-up: the command line, the mount, the workers, signals and shutdown. */
#include "ptfs.h"
#include "defects.h"
#include "inodes.h"
#include "init.h"
#include "proto.h"
#include "uring.h"

struct config cfg = {
	.threads = 4,
	.timeout_sec = 1,
	.max_stack_depth = 1,
	.policy = POL_PASSTHROUGH,
};

struct state g = {
	.devfd = -1,
	.table_lock = PTHREAD_MUTEX_INITIALIZER,
	.handles_lock = PTHREAD_MUTEX_INITIALIZER,
	.done_pipe = {-1, -1},
};

/* ---- command line ------------------------------------------------------- */

static void usage(FILE *f)
{
	fputs("usage: ptfs --source DIR --mountpoint DIR [options]\n"
	      "  --threads N              worker threads reading /dev/fuse (default 4);\n"
	      "                           with --io-uring: ring entries (one thread each) per queue (default 2)\n"
	      "  --io-uring               serve requests over FUSE-over-io_uring (Linux 6.14+, fuse module\n"
	      "                           parameter enable_uring=Y): one queue per possible CPU; FORGET and\n"
	      "                           INTERRUPT still come over /dev/fuse; falls back to /dev/fuse when\n"
	      "                           the kernel does not grant it\n"
	      "  --attr-timeout SEC       entry and attribute timeout (default 1, may be 0)\n"
	      "  --no-passthrough         never request FUSE_PASSTHROUGH\n"
	      "  --no-allow-other         mount without allow_other (only root may enter)\n"
	      "  --max-stack-depth N      max_stack_depth in the INIT reply (default 1)\n"
	      "  --writeback-cache        also request FUSE_WRITEBACK_CACHE (kernel then refuses passthrough)\n"
	      "  --direct-io-allow-mmap   also request FUSE_DIRECT_IO_ALLOW_MMAP (shared maps of DIRECT_IO files)\n"
	      "  --io-policy P            passthrough|cached|direct|passthrough-direct|by-access|passthrough-reads\n"
	      "  --backing-ids W          until-release (default: closed at the inode's last release)\n"
	      "                           or until-forget (kept until the kernel forgets the inode)\n"
	      "  --open-flags-extra HEX   OR these FOPEN_* bits into every open reply\n"
	      "  --probe-open-replies     a file's name shapes its open reply: flags-HEX ORs FOPEN_* bits\n"
	      "                           in, id-zero|id-negative|id-unknown|id-closed name such a backing\n"
	      "                           id; a directory named dir-passthrough gets FOPEN_PASSTHROUGH\n"
	      "  --ioctl-selfcheck FILE   run the backing ioctl error cases after INIT, write JSON\n"
	      "  --init-report FILE       write what the kernel offered in INIT as JSON\n"
	      "  --defect NAME            inject a server bug (repeatable; hang-on/crash-on take an OPCODE)\n"
	      "  --debug                  log requests to stderr\n"
	      "  --version, --help\n",
	      f);
	defect_usage(f);
}

static unsigned long parse_num(const char *opt, const char *s, int base, unsigned long max)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, base);
	if (!*s || *end || errno || v > max || s[0] == '-')
		usage_error("invalid value '%s' for %s", s, opt);
	return v;
}

static void parse_args(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *val = NULL;
		bool takes = strcmp(a, "--source") == 0 || strcmp(a, "--mountpoint") == 0 ||
			     strcmp(a, "--threads") == 0 || strcmp(a, "--attr-timeout") == 0 ||
			     strcmp(a, "--max-stack-depth") == 0 || strcmp(a, "--io-policy") == 0 ||
			     strcmp(a, "--open-flags-extra") == 0 || strcmp(a, "--ioctl-selfcheck") == 0 ||
			     strcmp(a, "--init-report") == 0 || strcmp(a, "--defect") == 0 ||
			     strcmp(a, "--backing-ids") == 0;
		if (takes) {
			if (i + 1 >= argc)
				usage_error("option %s needs a value", a);
			val = argv[++i];
		}
		if (strcmp(a, "--version") == 0) {
			puts("ptfs " PTFS_VERSION);
			exit(0);
		} else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage(stdout);
			exit(0);
		} else if (strcmp(a, "--source") == 0) {
			cfg.source = val;
		} else if (strcmp(a, "--mountpoint") == 0) {
			cfg.mountpoint = val;
		} else if (strcmp(a, "--threads") == 0) {
			cfg.threads = (int)parse_num(a, val, 10, 256);
			cfg.threads_given = true;
			if (cfg.threads < 1)
				usage_error("--threads must be at least 1");
		} else if (strcmp(a, "--attr-timeout") == 0) {
			char *end;
			double t = strtod(val, &end);
			if (!*val || *end || !(t >= 0) || t > 1e9)
				usage_error("invalid value '%s' for --attr-timeout", val);
			cfg.timeout_sec = (uint64_t)t;
			cfg.timeout_nsec = (uint32_t)((t - (double)cfg.timeout_sec) * 1e9);
		} else if (strcmp(a, "--no-passthrough") == 0) {
			cfg.no_passthrough = true;
		} else if (strcmp(a, "--probe-open-replies") == 0) {
			cfg.probe_open_replies = true;
		} else if (strcmp(a, "--io-uring") == 0) {
			cfg.io_uring = true;
		} else if (strcmp(a, "--no-allow-other") == 0) {
			cfg.no_allow_other = true;
		} else if (strcmp(a, "--max-stack-depth") == 0) {
			cfg.max_stack_depth = (uint32_t)parse_num(a, val, 10, UINT32_MAX);
		} else if (strcmp(a, "--writeback-cache") == 0) {
			cfg.writeback = true;
		} else if (strcmp(a, "--direct-io-allow-mmap") == 0) {
			cfg.direct_io_allow_mmap = true;
		} else if (strcmp(a, "--io-policy") == 0) {
			if (strcmp(val, "passthrough") == 0)
				cfg.policy = POL_PASSTHROUGH;
			else if (strcmp(val, "cached") == 0)
				cfg.policy = POL_CACHED;
			else if (strcmp(val, "direct") == 0)
				cfg.policy = POL_DIRECT;
			else if (strcmp(val, "passthrough-direct") == 0)
				cfg.policy = POL_PT_DIRECT;
			else if (strcmp(val, "by-access") == 0)
				cfg.policy = POL_BY_ACCESS;
			else if (strcmp(val, "passthrough-reads") == 0)
				cfg.policy = POL_PT_READS;
			else
				usage_error("unknown --io-policy '%s' (passthrough|cached|direct|passthrough-direct|by-access|passthrough-reads)",
					    val);
		} else if (strcmp(a, "--backing-ids") == 0) {
			if (strcmp(val, "until-release") == 0)
				cfg.ids_until_forget = false;
			else if (strcmp(val, "until-forget") == 0)
				cfg.ids_until_forget = true;
			else
				usage_error("unknown --backing-ids '%s' (until-release|until-forget)", val);
		} else if (strcmp(a, "--open-flags-extra") == 0) {
			cfg.open_flags_extra = (uint32_t)parse_num(a, val, 16, UINT32_MAX);
		} else if (strcmp(a, "--ioctl-selfcheck") == 0) {
			cfg.selfcheck_path = val;
		} else if (strcmp(a, "--init-report") == 0) {
			cfg.init_report_path = val;
		} else if (strcmp(a, "--debug") == 0) {
			cfg.debug = true;
		} else if (strcmp(a, "--defect") == 0) {
			int d = defect_lookup(val);
			if (d < 0)
				defect_unknown(val);
			uint32_t op = 0;
			if (defect_table[d].opcode != NO_OPCODE) {
				if (i + 1 >= argc)
					usage_error("--defect %s needs an OPCODE", val);
				op = parse_opcode(argv[++i]);
			}
			defect_enable(d, op);
		} else {
			usage_error("unknown option '%s' (see --help)", a);
		}
	}
	if (!cfg.source)
		usage_error("--source is required");
	if (!cfg.mountpoint)
		usage_error("--mountpoint is required");
}

static void check_dirs(struct stat *src_st)
{
	if (stat(cfg.source, src_st) < 0)
		usage_error("source %s: %s", cfg.source, strerror(errno));
	if (!S_ISDIR(src_st->st_mode))
		usage_error("source %s is not a directory", cfg.source);
	DIR *d = opendir(cfg.mountpoint);
	if (!d)
		usage_error("mountpoint %s: %s", cfg.mountpoint, strerror(errno));
	struct dirent *de;
	bool empty = true;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			empty = false;
	closedir(d);
	if (!empty)
		usage_error("mountpoint %s is not empty", cfg.mountpoint);
}

/* ---- main --------------------------------------------------------------- */

static void free_all(void)
{
	while (g.handles.next != &g.handles) {
		struct handle *h = g.handles.next;
		handle_unlink(h);
		handle_destroy(h);
	}
	for (size_t b = 0; b < NBUCKETS; b++) {
		struct inode *p = g.buckets[b];
		while (p) {
			struct inode *next = p->hnext;
			if (p != &g.root)
				inode_free(p);
			p = next;
		}
	}
	free(g.buckets);
	close(g.root.fd);
	pthread_mutex_destroy(&g.root.lock);
}

int main(int argc, char **argv)
{
	parse_args(argc, argv);
	struct stat src_st;
	check_dirs(&src_st);

	int rootfd = open(cfg.source, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		usage_error("source %s: %s", cfg.source, strerror(errno));
	g.devfd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	if (g.devfd < 0)
		usage_error("cannot open /dev/fuse: %s", strerror(errno));

	umask(0);
	signal(SIGPIPE, SIG_IGN);
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	int sfd = signalfd(-1, &sigs, SFD_CLOEXEC);
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = wake_handler; /* no SA_RESTART: read() returns EINTR */
	sigaction(SIGUSR1, &sa, NULL);
	sigaddset(&sigs, SIGUSR1); /* blocked everywhere except inside workers */
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	sigdelset(&sigs, SIGUSR1);
	if (sfd < 0 || pipe2(g.done_pipe, O_CLOEXEC) < 0 || pipe2(g.wake_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
		usage_error("cannot set up signals: %s", strerror(errno));

	cfg.mountpoint = defect_on_mount(cfg.mountpoint);
	char opts[256];
	snprintf(opts, sizeof(opts), "fd=%d,rootmode=%o,user_id=0,group_id=0,default_permissions%s", g.devfd,
		 src_st.st_mode & S_IFMT, cfg.no_allow_other ? "" : ",allow_other");
	if (mount("ptfs", cfg.mountpoint, "fuse.ptfs", MS_NOSUID | MS_NODEV, opts) < 0)
		usage_error("mount %s: %s", cfg.mountpoint, strerror(errno));

	g.buckets = calloc(NBUCKETS, sizeof(*g.buckets));
	g.handles.next = g.handles.prev = &g.handles;
	inode_init_common(&g.root, rootfd, &src_st);
	g.root.nlookup = 1;
	g.buckets[bucket_of(src_st.st_dev, src_st.st_ino)] = &g.root;

	defect_after_mount();

	/* --io-uring: the rings and their threads exist before INIT, so that the INIT reply asks
	 * for FUSE_OVER_IO_URING only when ptfs can serve it (once asked, the kernel holds requests
	 * back until every queue has an entry, or a registration fails). */
	/* Every possible CPU gets a queue and each entry costs ~2 MiB (payload and reply buffer):
	 * 2 entries per queue unless --threads says otherwise. */
	int per_queue = cfg.threads_given ? cfg.threads : 2;
	int nq = cfg.io_uring ? uring_queue_count() : 0;
	struct worker *ws = calloc((size_t)cfg.threads + (size_t)nq * (size_t)per_queue, sizeof(*ws));
	if (!ws)
		usage_error("out of memory");
	g.workers = ws;
	int nring = 0;
	char why[256] = "";
	if (cfg.io_uring) {
		nring = uring_prepare(ws, per_queue, why, sizeof(why));
		g.uring_ready = nring > 0;
		g.nworkers = nring;
	}

	char *initbuf = malloc(REQ_BUFSIZE);
	int rc = initbuf ? handle_init(initbuf) : 1;
	free(initbuf);
	if (rc != 0) {
		uring_abandon(ws, nring);
		g.nworkers = 0;
		umount2(cfg.mountpoint, MNT_DETACH);
		close(g.devfd);
		free(ws);
		free_all();
		return rc;
	}

	if (cfg.io_uring) {
		if (g.uring_ready && !(g.replied & PT_INIT_OVER_IO_URING))
			snprintf(why, sizeof(why),
				 "the kernel did not offer FUSE_OVER_IO_URING in INIT: "
				 "/sys/module/fuse/parameters/enable_uring is N, or no CONFIG_FUSE_IO_URING");
		else if (g.uring_ready && uring_start(why, sizeof(why)) == 0)
			g.uring_active = true;
		if (g.uring_active) {
			logmsg("io_uring: %d queues, %d entries each", uring_queues(), per_queue);
		} else {
			logmsg("io_uring: not available (%s); serving over /dev/fuse", why);
			uring_abandon(ws, nring);
			nring = 0;
			g.nworkers = 0;
		}
	}

	/* Over io_uring one /dev/fuse worker is enough: only FORGET and INTERRUPT come that way. */
	int ndev = g.uring_active ? 1 : cfg.threads;
	int started = 0;
	for (int i = 0; i < ndev; i++) {
		struct worker *w = &ws[nring + i];
		memset(w, 0, sizeof(*w)); /* maybe a ring worker's slot before */
		if (i == 0) {
			w->fd = g.devfd;
		} else {
			w->fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
			uint32_t master = (uint32_t)g.devfd;
			if (w->fd < 0 || ioctl(w->fd, PT_DEV_IOC_CLONE, &master) < 0) {
				logmsg("FUSE_DEV_IOC_CLONE failed: %s; using %d threads", strerror(errno), i);
				if (w->fd >= 0)
					close(w->fd);
				break;
			}
			w->own_fd = true;
		}
		w->buf = malloc(REQ_BUFSIZE);
		w->out = malloc(OUT_BUFSIZE);
		if (!w->buf || !w->out || pthread_create(&w->tid, NULL, worker_main, w) != 0) {
			logmsg("cannot start worker %d", i);
			free(w->buf);
			free(w->out);
			if (w->own_fd)
				close(w->fd);
			break;
		}
		started++;
		g.nworkers = nring + started;
	}
	started += nring;

	bool by_signal = false;
	/* The device fd with no events still reports POLLERR once the connection
	 * is aborted, even if every worker is stuck (hang-on). */
	struct pollfd pfd[4] = {{.fd = sfd, .events = POLLIN},
				{.fd = g.done_pipe[0], .events = POLLIN},
				{.fd = g.devfd, .events = 0},
				{.fd = g.wake_pipe[0], .events = POLLIN}};
	while (started > 0) {
		if (poll(pfd, 4, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[0].revents) {
			struct signalfd_siginfo si;
			ssize_t got = read(sfd, &si, sizeof(si));
			if (got > 0 && defect_on_signal(si.ssi_signo))
				continue;
			if (got > 0)
				by_signal = true;
			break;
		}
		if (pfd[3].revents) {
			char buf[16];
			while (read(g.wake_pipe[0], buf, sizeof(buf)) > 0) {
			}
			pfd[2].fd = -1; /* the device is gone (close-dev-on): stop watching it */
			continue;
		}
		if (pfd[1].revents || (pfd[2].revents & (POLLERR | POLLHUP | POLLNVAL)))
			break;
	}
	if (by_signal || started == 0) {
		if (umount2(cfg.mountpoint, MNT_DETACH) < 0 && errno != EINVAL)
			logmsg("umount %s: %s", cfg.mountpoint, strerror(errno));
	}
	defect_on_shutdown();
	atomic_store(&stopping, true);
	for (int i = 0; i < started; i++) {
		/* Repeat the wake-up: a signal landing just before read() is lost. */
		while (!atomic_load(&ws[i].exited)) {
			pthread_kill(ws[i].tid, SIGUSR1);
			struct timespec ts = {.tv_sec = 0, .tv_nsec = 20 * 1000 * 1000};
			nanosleep(&ts, NULL);
		}
		pthread_join(ws[i].tid, NULL);
		uring_worker_free(&ws[i]);
		free(ws[i].buf);
		free(ws[i].out);
		if (ws[i].own_fd)
			close(ws[i].fd);
	}
	free(ws);
	close(g.devfd);
	free_all();
	close(sfd);
	close(g.done_pipe[0]);
	close(g.done_pipe[1]);
	close(g.wake_pipe[0]);
	close(g.wake_pipe[1]);
	return 0;
}
