/* ptfs: logging, opcode and errno names. */
#include "ptfs.h"

void logmsg(const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	if (write(STDERR_FILENO, "ptfs: ", 6) < 0 || write(STDERR_FILENO, line, n) < 0)
		return;
}

void usage_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("ptfs: error: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(2);
}

static const char *const op_names[] = {
	[PT_LOOKUP] = "LOOKUP", [PT_FORGET] = "FORGET", [PT_GETATTR] = "GETATTR",
	[PT_SETATTR] = "SETATTR", [PT_READLINK] = "READLINK", [PT_SYMLINK] = "SYMLINK",
	[PT_MKNOD] = "MKNOD", [PT_MKDIR] = "MKDIR", [PT_UNLINK] = "UNLINK",
	[PT_RMDIR] = "RMDIR", [PT_RENAME] = "RENAME", [PT_LINK] = "LINK",
	[PT_OPEN] = "OPEN", [PT_READ] = "READ", [PT_WRITE] = "WRITE",
	[PT_STATFS] = "STATFS", [PT_RELEASE] = "RELEASE", [PT_FSYNC] = "FSYNC",
	[PT_SETXATTR] = "SETXATTR", [PT_GETXATTR] = "GETXATTR", [PT_LISTXATTR] = "LISTXATTR",
	[PT_REMOVEXATTR] = "REMOVEXATTR", [PT_FLUSH] = "FLUSH", [PT_INIT] = "INIT",
	[PT_OPENDIR] = "OPENDIR", [PT_READDIR] = "READDIR", [PT_RELEASEDIR] = "RELEASEDIR",
	[PT_FSYNCDIR] = "FSYNCDIR", [PT_GETLK] = "GETLK", [PT_SETLK] = "SETLK",
	[PT_SETLKW] = "SETLKW", [PT_ACCESS] = "ACCESS", [PT_CREATE] = "CREATE",
	[PT_INTERRUPT] = "INTERRUPT", [PT_BMAP] = "BMAP", [PT_DESTROY] = "DESTROY",
	[PT_IOCTL] = "IOCTL", [PT_POLL] = "POLL", [PT_NOTIFY_REPLY] = "NOTIFY_REPLY",
	[PT_BATCH_FORGET] = "BATCH_FORGET", [PT_FALLOCATE] = "FALLOCATE",
	[PT_READDIRPLUS] = "READDIRPLUS", [PT_RENAME2] = "RENAME2", [PT_LSEEK] = "LSEEK",
	[PT_COPY_FILE_RANGE] = "COPY_FILE_RANGE", [PT_SETUPMAPPING] = "SETUPMAPPING",
	[PT_REMOVEMAPPING] = "REMOVEMAPPING", [PT_SYNCFS] = "SYNCFS", [PT_TMPFILE] = "TMPFILE",
	[PT_STATX] = "STATX",
};
#define N_OP_NAMES (sizeof(op_names) / sizeof(op_names[0]))

const char *opname(uint32_t op)
{
	if (op < N_OP_NAMES && op_names[op])
		return op_names[op];
	return "UNKNOWN";
}

uint32_t parse_opcode(const char *s)
{
	char *end;
	unsigned long v = strtoul(s, &end, 0);
	if (*s && !*end && v > 0 && v < 100000)
		return (uint32_t)v;
	const char *name = s;
	if (strncasecmp(name, "FUSE_", 5) == 0)
		name += 5;
	for (uint32_t i = 0; i < N_OP_NAMES; i++)
		if (op_names[i] && strcasecmp(op_names[i], name) == 0)
			return i;
	usage_error("unknown opcode '%s' (use a name like OPEN or a number)", s);
}

const char *errname(int e)
{
	switch (e) {
	case EPERM: return "EPERM";
	case ENOENT: return "ENOENT";
	case EIO: return "EIO";
	case EBADF: return "EBADF";
	case EFAULT: return "EFAULT";
	case EINVAL: return "EINVAL";
	case EISDIR: return "EISDIR";
	case ELOOP: return "ELOOP";
	case ENOTTY: return "ENOTTY";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case ENOSYS: return "ENOSYS";
	case EACCES: return "EACCES";
	case ENOMEM: return "ENOMEM";
	case ENODEV: return "ENODEV";
	case EXDEV: return "EXDEV";
	case ENOSPC: return "ENOSPC";
	default: return NULL;
	}
}

void proc_path(char *buf, size_t len, int fd)
{
	snprintf(buf, len, "/proc/self/fd/%d", fd);
}
