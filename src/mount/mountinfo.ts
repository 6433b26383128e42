import { readFileSync, writeFileSync, existsSync } from 'node:fs';

export interface MountEntry {
  mountpoint: string;
  fstype: string;
  source: string;
  major: number;
  minor: number;
  /** Per-superblock options (for FUSE: user_id=0,group_id=0,default_permissions,allow_other...). */
  superOptions: string[];
}

const unescapeOctal = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));

export function mounts(): MountEntry[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const f = l.split(' ');
      const dash = f.indexOf('-');
      const [major, minor] = f[2].split(':').map(Number);
      return {
        mountpoint: unescapeOctal(f[4]),
        fstype: f[dash + 1],
        source: unescapeOctal(f[dash + 2]),
        major,
        minor,
        superOptions: (f[dash + 3] ?? '').split(','),
      };
    });
}

/** The FUSE mount at exactly this path (the topmost if stacked), or null. */
export function fuseMountAt(p: string): MountEntry | null {
  const hits = mounts().filter((m) => m.mountpoint === p && (m.fstype === 'fuse' || m.fstype.startsWith('fuse.')));
  return hits.length ? hits[hits.length - 1] : null;
}

export function mountsUnder(p: string): MountEntry[] {
  const pre = p.endsWith('/') ? p : p + '/';
  return mounts().filter((m) => m.mountpoint === p || m.mountpoint.startsWith(pre));
}

/** Abort a FUSE connection through fusectl: a sysfs write that never waits on the server. */
export function abortConnection(conn: number): boolean {
  const f = `/sys/fs/fuse/connections/${conn}/abort`;
  if (!existsSync(f)) return false;
  try {
    writeFileSync(f, '1');
    return true;
  } catch {
    return false;
  }
}

export function connectionWaiting(conn: number): number | null {
  try {
    return Number(readFileSync(`/sys/fs/fuse/connections/${conn}/waiting`, 'utf8').trim());
  } catch {
    return null;
  }
}
