// Deterministic file contents: the model of a file is computed from (seed, size), never read back
// through the mount, so a check compares the mount with an expectation made independently of it.
import { mkdirSync, writeFileSync, symlinkSync, readFileSync } from 'node:fs';
import path from 'node:path';

export interface TreeSpec {
  dirs: string[];
  files: { path: string; size: number; seed: number; mode?: number }[];
  symlinks: { path: string; target: string }[];
}

export function pattern(seed: number, size: number, offset = 0): Buffer {
  // Counter-based mixing (splitmix32 of seed and block index) so any range is computed directly.
  const out = Buffer.alloc(size);
  let i = 0;
  while (i < size) {
    const pos = offset + i;
    const block = Math.floor(pos / 4);
    let x = (Math.imul(block, 0x9e3779b1) ^ Math.imul(seed | 0, 0x85ebca6b)) >>> 0;
    x = Math.imul(x ^ (x >>> 16), 0x7feb352d) >>> 0;
    x = Math.imul(x ^ (x >>> 15), 0x846ca68b) >>> 0;
    x = (x ^ (x >>> 16)) >>> 0;
    const within = pos % 4;
    for (let b = within; b < 4 && i < size; b++, i++) out[i] = (x >>> (8 * b)) & 0xff;
  }
  return out;
}

export function loadTree(name: string): TreeSpec {
  const f = path.resolve(import.meta.dirname, '../../fixtures/trees', `${name}.json`);
  return JSON.parse(readFileSync(f, 'utf8')) as TreeSpec;
}

export function seedTree(root: string, tree: TreeSpec): void {
  for (const d of tree.dirs) mkdirSync(path.join(root, d), { recursive: true });
  for (const f of tree.files) {
    mkdirSync(path.dirname(path.join(root, f.path)), { recursive: true });
    writeFileSync(path.join(root, f.path), pattern(f.seed, f.size), { mode: f.mode ?? 0o644 });
  }
  for (const s of tree.symlinks) symlinkSync(s.target, path.join(root, s.path));
}
