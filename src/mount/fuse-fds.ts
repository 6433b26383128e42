// Which processes hold which FUSE connections: a /dev/fuse fd's /proc/PID/fdinfo names its
// connection ("fuse_connection: N", the minor of the mount's st_dev). The one scan of it that
// the server lookup, the sweeps and the borrowed-fd probe all use.
import { readdirSync, readlinkSync, readFileSync } from 'node:fs';

/** The /dev/fuse fds of `pid` with the connection each belongs to (none when pid is gone). */
export function fuseFdsOf(pid: number): { fd: number; conn: number }[] {
  const out: { fd: number; conn: number }[] = [];
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return out;
  }
  for (const fd of fds) {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`) !== '/dev/fuse') continue;
      const m = /^fuse_connection:\s*(\d+)/m.exec(readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'));
      if (m) out.push({ fd: Number(fd), conn: Number(m[1]) });
    } catch {
      /* the fd went away */
    }
  }
  return out;
}

/** Server processes of a FUSE connection: every process holding a /dev/fuse fd of it. */
export function serverPids(conn: number): number[] {
  return readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .map(Number)
    .filter((p) => fuseFdsOf(p).some((f) => f.conn === conn));
}

/** FUSE connections whose /dev/fuse fd one of these processes holds. */
export function connectionsHeldBy(pids: Iterable<number>): number[] {
  const conns = new Set<number>();
  for (const p of pids) for (const f of fuseFdsOf(p)) conns.add(f.conn);
  return [...conns];
}
