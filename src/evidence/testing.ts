// Mounts for the evidence module's own integration tests, fixture recorder and bench.
// (The suites use src/mount's ServerInstance; this is a small self-contained helper so the
// evidence layer can be tested on its own.) Everything lives in fresh mkdtemp dirs; stop()
// unmounts, kills only the pid it started, and removes the dirs.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const PTFS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../servers/ptfs/ptfs');

export function haveBindfs(): boolean {
  return spawnSync('bindfs', ['--version'], { stdio: 'ignore' }).status === 0;
}
export function havePtfs(): boolean {
  try {
    fs.accessSync(PTFS, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export function connectionOf(mnt: string): number {
  const dev = Number(fs.statSync(mnt).dev);
  // minor(st_dev) as glibc's gnu_dev_minor
  return (dev & 0xff) | ((dev >>> 12) & ~0xff);
}

export interface TestMount {
  src: string;
  mnt: string;
  pid: number;
  connection: number;
  child: ChildProcess;
  stop(): Promise<void>;
}

function isMounted(mnt: string): boolean {
  const real = fs.realpathSync(mnt);
  return fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[4] === real);
}

/**
 * Start `bindfs -f SRC MNT` or `ptfs --source SRC --mountpoint MNT ...args` in the
 * foreground; `fill(src)` populates the source first.
 */
export async function startMount(kind: 'bindfs' | 'ptfs', args: string[] = [], fill?: (src: string) => void): Promise<TestMount> {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), `fusecert-ev-${kind}-`));
  const src = path.join(base, 'src');
  const mnt = path.join(base, 'mnt');
  fs.mkdirSync(src);
  fs.mkdirSync(mnt, { mode: 0o700 });
  fill?.(src);
  const argv = kind === 'bindfs' ? (['bindfs', ['-f', ...args, src, mnt]] as const) : ([PTFS, ['--source', src, '--mountpoint', mnt, ...args]] as const);
  const child = spawn(argv[0], [...argv[1]], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<void>((res) => child.once('exit', () => res()));
  let gone = false;
  void exited.then(() => (gone = true));

  const stop = async () => {
    try {
      if (isMounted(mnt)) {
        if (kind === 'ptfs' && !gone) child.kill('SIGTERM');
        else spawnSync('umount', [mnt], { stdio: 'ignore' });
      } else if (!gone) {
        child.kill('SIGTERM');
      }
      const t = setTimeout(() => {
        if (!gone) child.kill('SIGKILL');
      }, 5000);
      await exited;
      clearTimeout(t);
      if (isMounted(mnt)) spawnSync('umount', ['-l', mnt], { stdio: 'ignore' });
    } finally {
      fs.rmSync(base, { recursive: true, force: true });
    }
  };

  const deadline = Date.now() + 10_000;
  while (!isMounted(mnt)) {
    if (gone || Date.now() > deadline) {
      await stop();
      throw new Error(`${kind} did not mount ${mnt}: ${stderr.trim() || 'timeout'}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return { src, mnt, pid: child.pid!, connection: connectionOf(mnt), child, stop };
}
