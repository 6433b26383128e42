// Whole-file checks shared by the data suites: the file read through the mount (a fresh fd) and,
// for servers that claim to mirror their source, the backing file read directly, against a model.
import { open, readFile, statfs } from 'node:fs/promises';
import type { Mount } from './clause-mount.ts';
import { check, expectBytes } from './expect.ts';

/** pread exactly len bytes at off (looping over short reads); fewer only at EOF. */
export async function preadFull(fh: import('node:fs/promises').FileHandle, off: number, len: number): Promise<Buffer> {
  const buf = Buffer.alloc(len);
  let got = 0;
  while (got < len) {
    const { bytesRead } = await fh.read(buf, got, len - got, off + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return buf.subarray(0, got);
}

/** The file through the mount (a new fd) and, for mirror servers, the backing file equal the model. */
export async function expectFile(mount: Mount, rel: string, model: Buffer, what: string): Promise<void> {
  const fh = await open(mount.path(rel), 'r');
  try {
    const st = await fh.stat();
    check(st.size === model.length, `${what}: fstat through the mount showed size ${st.size}, expected ${model.length}`);
    expectBytes(await preadFull(fh, 0, model.length + 1), model, `${what}: read through the mount`);
  } finally {
    await fh.close();
  }
  if (mount.claims.mirror) expectBytes(await readFile(mount.backing(rel)), model, `${what}: the backing file read directly`);
}

/** Copy a model buffer's bytes over another at off, extending it (zero-filled) when needed. */
export function applyWrite(model: Buffer, off: number, data: Buffer): Buffer {
  const out = off + data.length > model.length ? Buffer.concat([model, Buffer.alloc(off + data.length - model.length)]) : model;
  data.copy(out, off);
  return out;
}

/** Model of truncate: shrink, or extend with zeros. */
export function applyTruncate(model: Buffer, size: number): Buffer {
  if (size <= model.length) return Buffer.from(model.subarray(0, size));
  return Buffer.concat([model, Buffer.alloc(size - model.length)]);
}

/** Bytes in use on the filesystem of `dir` (statfs: blocks less free blocks). */
export async function usedBytes(dir: string): Promise<number> {
  const s = await statfs(dir);
  return (s.blocks - s.bfree) * s.bsize;
}
