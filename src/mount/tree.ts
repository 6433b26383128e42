// Deterministic file contents: the model of a file is computed from (seed, size), never read back
// through the mount, so a check compares the mount with an expectation made independently of it.
import { mkdirSync, writeFileSync, symlinkSync, readFileSync } from 'node:fs';
import path from 'node:path';

export interface TreeSpec {
  dirs: string[];
  files: { path: string; size: number; seed: number; mode?: number }[];
  symlinks: { path: string; target: string }[];
}

/** The 32-bit word of block `block` of seed `seed`'s stream: bytes 4*block..4*block+3, little-endian. */
function word(seed: number, block: number): number {
  let x = (Math.imul(block, 0x9e3779b1) ^ Math.imul(seed | 0, 0x85ebca6b)) >>> 0;
  x = Math.imul(x ^ (x >>> 16), 0x7feb352d) >>> 0;
  x = Math.imul(x ^ (x >>> 15), 0x846ca68b) >>> 0;
  return (x ^ (x >>> 16)) >>> 0;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
const swap32 = (x: number) => ((x & 0xff) << 24) | ((x & 0xff00) << 8) | ((x >>> 8) & 0xff00) | (x >>> 24);

export function pattern(seed: number, size: number, offset = 0): Buffer {
  // Counter-based mixing (splitmix32 of seed and block index) so any range is computed directly.
  // Whole words into an aligned array, then the bytes wanted out of it: a byte at a time made
  // seeding a workspace's 4.5 MB tree most of a worker's CPU for a clause mount.
  const first = Math.floor(offset / 4);
  const skip = offset - first * 4;
  const words = new Uint32Array(Math.ceil((skip + size) / 4));
  for (let w = 0; w < words.length; w++) words[w] = word(seed, first + w);
  const bytes = Buffer.from(words.buffer, skip, size);
  if (!LITTLE_ENDIAN) for (let w = 0; w < words.length; w++) words[w] = swap32(words[w]!); // the stream is defined little-endian
  return bytes;
}

export function loadTree(name: string): TreeSpec {
  const f = path.resolve(import.meta.dirname, '../../fixtures/trees', `${name}.json`);
  return JSON.parse(readFileSync(f, 'utf8')) as TreeSpec;
}

/** Contents of the trees' files, made once per worker (a workspace is seeded for most clause mounts). */
const seeded = new Map<string, Buffer>();
const SEEDED_MAX = 64 << 20;
let seededBytes = 0;
function contents(seed: number, size: number): Buffer {
  const key = `${seed}:${size}`;
  let b = seeded.get(key);
  if (!b) {
    b = pattern(seed, size);
    if (seededBytes + size <= SEEDED_MAX) {
      seeded.set(key, b);
      seededBytes += size;
    }
  }
  return b;
}

export function seedTree(root: string, tree: TreeSpec): void {
  for (const d of tree.dirs) mkdirSync(path.join(root, d), { recursive: true });
  for (const f of tree.files) {
    mkdirSync(path.dirname(path.join(root, f.path)), { recursive: true });
    writeFileSync(path.join(root, f.path), contents(f.seed, f.size), { mode: f.mode ?? 0o644 });
  }
  for (const s of tree.symlinks) symlinkSync(s.target, path.join(root, s.path));
}
