// The borrowed-fd probe of SPEC §5a: what a FUSE connection negotiated, read from outside the
// server without side effects. We take a duplicate of the server's /dev/fuse fd with
// pidfd_open + pidfd_getfd and issue the backing ioctls ourselves. The kernel checks
// negotiation before the flags, so BACKING_OPEN with flags = 1 gives EPERM when passthrough was
// not granted and EINVAL when it was, allocating nothing either way. The negotiated stack depth
// follows from a real BACKING_OPEN of a file on an overlayfs (stack depth 1): ELOOP means the
// connection's max_stack_depth is 1, an id (closed at once) means 2.
// Our own ioctls never reach the ledger: the ioctl trace is filtered by the server's threads.
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { O, FUSE_DEV_IOC, ioctlAsync, openAsync, closeAsync, pidfdOpenAsync, pidfdGetfdAsync, SysError } from '../sys/index.ts';
import { makeWorkspace } from '../mount/index.ts';
import { fdsOfConnection } from '../mount/fuse-fds.ts';
import { errnoOf } from './expect.ts';

/** fds of `pid` that are /dev/fuse and belong to FUSE connection `conn`. */
export function devFuseFds(pid: number, conn: number): number[] {
  return fdsOfConnection(pid, conn); // pid is one of the mount's server processes: on a kernel that does not name fds' connections, its /dev/fuse fds
}

/** A duplicate, in this process, of a /dev/fuse fd of connection `conn` held by one of `pids`. Close it. */
export async function borrowDeviceFd(pids: readonly number[], conn: number): Promise<number> {
  const tried: string[] = [];
  for (const pid of pids) {
    for (const fd of devFuseFds(pid, conn)) {
      let pidfd = -1;
      try {
        pidfd = await pidfdOpenAsync(pid);
        return await pidfdGetfdAsync(pidfd, fd);
      } catch (e) {
        tried.push(`${pid}/fd ${fd}: ${errnoOf(e)}`);
      } finally {
        if (pidfd >= 0) await closeAsync(pidfd).catch(() => {});
      }
    }
  }
  throw new Error(
    `no /dev/fuse fd of connection ${conn} could be borrowed from pids ${pids.join(',') || '(none)'}${tried.length ? ` (${tried.join('; ')})` : ''}`,
  );
}

function backingMap(fd: number, flags = 0, padding = 0n): Buffer {
  const b = Buffer.alloc(16);
  b.writeInt32LE(fd, 0);
  b.writeUInt32LE(flags, 4);
  b.writeBigUInt64LE(padding, 8);
  return b;
}

/** FUSE_DEV_IOC_BACKING_OPEN: the id, or the errno name ('ELOOP'). */
export async function backingOpen(devFd: number, fd: number, flags = 0, padding = 0n): Promise<number | string> {
  try {
    return await ioctlAsync(devFd, FUSE_DEV_IOC.BACKING_OPEN, backingMap(fd, flags, padding));
  } catch (e) {
    if (e instanceof SysError) return e.code;
    throw e;
  }
}

/** FUSE_DEV_IOC_BACKING_CLOSE: 'OK' or the errno name. */
export async function backingClose(devFd: number, id: number): Promise<string> {
  const b = Buffer.alloc(4);
  b.writeInt32LE(id, 0);
  try {
    await ioctlAsync(devFd, FUSE_DEV_IOC.BACKING_CLOSE, b);
    return 'OK';
  } catch (e) {
    if (e instanceof SysError) return e.code;
    throw e;
  }
}

export interface NegotiationProbe {
  granted: boolean;
  /** errno of BACKING_OPEN(flags = 1): EINVAL granted, EPERM not granted; anything else is unexpected */
  code: string;
}

async function withDevFd<T>(pids: readonly number[], conn: number, fn: (devFd: number) => Promise<T>): Promise<T> {
  const devFd = await borrowDeviceFd(pids, conn);
  try {
    return await fn(devFd);
  } finally {
    await closeAsync(devFd).catch(() => {});
  }
}

/** Was passthrough granted on this connection? (no id is allocated) */
export async function probeNegotiation(pids: readonly number[], conn: number, someFile: string): Promise<NegotiationProbe> {
  return withDevFd(pids, conn, async (devFd) => {
    const f = await openAsync(someFile, O.O_RDONLY | O.O_CLOEXEC);
    try {
      const r = await backingOpen(devFd, f, 1);
      if (typeof r === 'number') {
        // cannot happen on a kernel that checks flags; do not leak what it gave us
        await backingClose(devFd, r);
        return { granted: true, code: `id ${r} (flags=1 accepted!)` };
      }
      return { granted: r === 'EINVAL', code: r };
    } finally {
      await closeAsync(f).catch(() => {});
    }
  });
}

export interface StackDepthProbe {
  depth: 1 | 2 | null;
  /** what BACKING_OPEN of an overlayfs file gave: ELOOP, 'id N' or another errno */
  result: string;
}

/** BACKING_OPEN through `devFd` of `file` (opened O_RDONLY): 'id N' (closed at once) or the errno name. */
async function openAndCloseBacking(devFd: number, file: string): Promise<string> {
  const f = await openAsync(file, O.O_RDONLY | O.O_CLOEXEC);
  try {
    const r = await backingOpen(devFd, f);
    if (typeof r === 'number') {
      const c = await backingClose(devFd, r);
      return `id ${r}${c === 'OK' ? '' : ` (close: ${c})`}`;
    }
    return r;
  } finally {
    await closeAsync(f).catch(() => {});
  }
}

/** BACKING_OPEN through `devFd` of a fresh file on a throw-away overlayfs (stack depth 1). */
export async function backingOpenOnOverlay(devFd: number): Promise<string> {
  const ws = await makeWorkspace({ kind: 'overlay', tree: null, sizeMb: 16 });
  try {
    const p = path.join(ws.source, 'probe');
    await writeFile(p, 'stack depth probe\n');
    return await openAndCloseBacking(devFd, p);
  } finally {
    await ws.dispose();
  }
}

/** The negotiated max_stack_depth: ELOOP on an overlayfs file means 1, an id means 2. */
export async function probeStackDepth(pids: readonly number[], conn: number): Promise<StackDepthProbe> {
  return withDevFd(pids, conn, async (devFd) => {
    const result = await backingOpenOnOverlay(devFd);
    return { depth: result === 'ELOOP' ? 1 : result.startsWith('id ') ? 2 : null, result };
  });
}

/** BACKING_OPEN through a borrowed fd of `file` (opened O_RDONLY); an id is closed at once. */
export async function probeBackingOpen(pids: readonly number[], conn: number, file: string): Promise<string> {
  return withDevFd(pids, conn, (devFd) => openAndCloseBacking(devFd, file));
}
