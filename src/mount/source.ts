// Fresh directories for one mount: a tmpfs source (seeded from a fixture tree) and an empty 0700
// mountpoint, both inside a temp dir of our own that is registered for cleanup.
import { mkdirSync, chmodSync, rmSync, existsSync } from 'node:fs';
import path from 'node:path';
import { dir as tmpDir } from 'tmp-promise';
import { mountAsync, umount2Async, MOUNT } from '../sys/index.ts';
import { register } from './registry.ts';
import { mountsUnder } from './mountinfo.ts';
import { loadTree, seedTree, type TreeSpec } from './tree.ts';

/** tmpfs; an overlayfs over tmpfs (the kernel refuses such backing files, ELOOP); a read-only bind of a tmpfs directory; or ramfs (no O_DIRECT, no size accounting). */
export type SourceKind = 'tmpfs' | 'overlay' | 'readonly' | 'ramfs';

export interface Workspace {
  base: string;
  /** The directory the server mirrors (for 'overlay', the merged overlayfs; for 'readonly', a read-only bind of the seeded directory). */
  source: string;
  /** The tmpfs under the source, for space accounting (statfs). */
  store: string;
  /** Empty directories on the source's filesystem for servers that need more than one ({scratch}). */
  scratch: string;
  mountpoint: string;
  kind: SourceKind;
  dispose(): Promise<void>;
}

/**
 * mount(2) itself, not mount(8): a worker's fork for the command cost ~30 ms of its CPU a mount
 * (its page tables copied), and a workspace is made and disposed for most clause mounts.
 */
async function mountFs(type: string, source: string, target: string, data: string): Promise<void> {
  try {
    await mountAsync(source, target, type, 0, data);
  } catch (e) {
    throw new Error(`mounting ${type} on ${target} (${data}) failed: ${(e as Error).message}`);
  }
}

export async function makeWorkspace(opts: { tree?: string | TreeSpec | null; kind?: SourceKind; sizeMb?: number } = {}): Promise<Workspace> {
  const kind = opts.kind ?? 'tmpfs';
  const t = await tmpDir({ prefix: 'fusecert-' });
  const base = t.path;
  const forget = register({ kind: 'tmpdir', path: base });
  const store = path.join(base, 'store');
  const mountpoint = path.join(base, 'mnt');
  mkdirSync(store);
  mkdirSync(mountpoint, { mode: 0o700 });
  chmodSync(mountpoint, 0o700);
  if (kind === 'ramfs') await mountFs('ramfs', 'fusecert-src', store, 'mode=0755');
  else await mountFs('tmpfs', 'fusecert-src', store, `size=${opts.sizeMb ?? 1024}m,mode=0755`);
  let source = path.join(store, 'src');
  const scratch = path.join(store, 'scratch');
  for (const d of ['scratch', 'scratch/lower', 'scratch/work']) mkdirSync(path.join(store, d));
  if (kind === 'tmpfs' || kind === 'readonly' || kind === 'ramfs') mkdirSync(source);
  else {
    for (const d of ['lower', 'upper', 'work', 'merged']) mkdirSync(path.join(store, d));
    source = path.join(store, 'merged');
    await mountFs('overlay', 'fusecert-ovl', source, `lowerdir=${store}/lower,upperdir=${store}/upper,workdir=${store}/work`);
  }
  if (opts.tree !== null) {
    const tree = typeof opts.tree === 'object' ? opts.tree : loadTree(opts.tree ?? 'basic');
    seedTree(source, tree);
  }
  if (kind === 'readonly') {
    // seeded first, then served through a read-only bind (a bind mount takes MS_RDONLY only on a remount)
    const ro = path.join(store, 'ro');
    mkdirSync(ro);
    try {
      await mountAsync(source, ro, 'none', MOUNT.MS_BIND, '');
      await mountAsync('none', ro, 'none', MOUNT.MS_REMOUNT | MOUNT.MS_BIND | MOUNT.MS_RDONLY, '');
    } catch (e) {
      throw new Error(`a read-only bind of ${source} on ${ro} failed: ${(e as Error).message}`);
    }
    source = ro;
  }
  let disposed = false;
  return {
    base,
    source,
    store,
    scratch,
    mountpoint,
    kind,
    async dispose() {
      if (disposed) return;
      disposed = true;
      for (const m of mountsUnder(base).reverse()) {
        // umount2(2), lazily when busy: the same as umount(8) then umount -l, without the forks
        await umount2Async(m.mountpoint).catch(() => umount2Async(m.mountpoint, MOUNT.MNT_DETACH).catch(() => undefined));
      }
      if (mountsUnder(base).length === 0 && existsSync(base)) rmSync(base, { recursive: true, force: true });
      if (!existsSync(base)) forget();
    },
  };
}
