// Which processes hold which FUSE connections: a /dev/fuse fd's /proc/PID/fdinfo names its
// connection ("fuse_connection: N", the minor of the mount's st_dev). The one scan of it that
// the server lookup, the sweeps and the borrowed-fd probe all use.
// Kernels before 6.18 (6.12 LTS among them) print no fuse_connection line: such an fd's
// connection is unknown (conn -1), and the callers attribute it by who holds it instead: a
// process fusecert started for one mount (its process group, or FUSECERT_SERVER_ID in its
// environment) serves that mount's connection.
import { readdirSync, readlinkSync, readFileSync } from 'node:fs';

/** The connection of a /dev/fuse fd whose fdinfo does not name it (before Linux 6.18). */
export const UNKNOWN_CONNECTION = -1;

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
      out.push({ fd: Number(fd), conn: m ? Number(m[1]) : UNKNOWN_CONNECTION });
    } catch {
      /* the fd went away */
    }
  }
  return out;
}

/** An fd that is of `conn` or may be (its kernel does not say). */
const mayBe = (f: { conn: number }, conn: number) => f.conn === conn || f.conn === UNKNOWN_CONNECTION;

/**
 * Server processes of a FUSE connection: those of `candidates` (the processes started for this
 * mount) that hold a /dev/fuse fd of it; if none does, every process holding one. Where the
 * kernel does not name fds' connections, the candidates that hold a /dev/fuse fd.
 */
export function serverPids(conn: number, candidates: readonly number[] = []): number[] {
  // the processes started for the mount first: a look at every process's every fd (tens of
  // thousands of readlinks on a machine running several certifications) is for a server whose
  // fd went somewhere they cannot see
  const started = [...new Set(candidates)];
  const mine = started.filter((p) => fuseFdsOf(p).some((f) => f.conn === conn));
  if (mine.length) return mine;
  const holders = readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .map(Number)
    .filter((p) => fuseFdsOf(p).some((f) => f.conn === conn));
  if (holders.length) return holders;
  return started.filter((p) => fuseFdsOf(p).some((f) => f.conn === UNKNOWN_CONNECTION));
}

/** FUSE connections whose /dev/fuse fd one of these processes holds (the ones the kernel names). */
export function connectionsHeldBy(pids: Iterable<number>): number[] {
  const conns = new Set<number>();
  for (const p of pids) for (const f of fuseFdsOf(p)) if (f.conn !== UNKNOWN_CONNECTION) conns.add(f.conn);
  return [...conns];
}

/** One of `pids` holds a /dev/fuse fd of `conn`, or one whose connection the kernel does not name. */
export function mayHoldConnection(pids: Iterable<number>, conn: number): boolean {
  for (const p of pids) if (fuseFdsOf(p).some((f) => mayBe(f, conn))) return true;
  return false;
}

/** The fds of `pid` that are of `conn` or may be. */
export function fdsOfConnection(pid: number, conn: number): number[] {
  return fuseFdsOf(pid)
    .filter((f) => mayBe(f, conn))
    .map((f) => f.fd);
}
