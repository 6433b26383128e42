// PipeReader on ordinary FIFOs (no tracefs needed): what it hands over, in order, and when.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { PipeReader } from './pipe-reader.ts';

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0).reverse()) c();
});

/** A FIFO opened for reading (non-blocking, as trace_pipe is) and for writing. */
function fifo(): { readFd: number; writeFd: number } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fusecert-pipe-reader-'));
  const p = path.join(dir, 'p');
  execFileSync('mkfifo', [p]);
  const readFd = fs.openSync(p, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  const writeFd = fs.openSync(p, fs.constants.O_WRONLY);
  cleanups.push(() => {
    fs.closeSync(writeFd);
    fs.closeSync(readFd);
    fs.rmSync(dir, { recursive: true });
  });
  return { readFd, writeFd };
}

describe('PipeReader', () => {
  test('ready resolves once the worker runs; take() hands over everything written before it, in order, per pipe', async () => {
    const a = fifo();
    const b = fifo();
    const got: string[][] = [];
    // readAtBytes huge: the worker reads only when asked
    const r = new PipeReader(
      [a, b].map((p) => ({ fd: p.readFd, stats: [], readAtBytes: Number.MAX_SAFE_INTEGER })),
      50,
      (t) => got.push(t),
    );
    cleanups.push(() => r.stopSync());
    await r.ready;
    fs.writeSync(a.writeFd, 'a1\n');
    fs.writeSync(b.writeFd, 'b1\n');
    fs.writeSync(a.writeFd, 'a2\n');
    await r.take();
    expect(got.map((t) => t[0]).join('')).toBe('a1\na2\n');
    expect(got.map((t) => t[1]).join('')).toBe('b1\n');
    fs.writeSync(b.writeFd, 'b2\n');
    await r.take();
    expect(got.map((t) => t[1]).join('')).toBe('b1\nb2\n');
  });

  test('after stopSync, take() is refused instead of waiting for a reader that is gone', async () => {
    const a = fifo();
    const r = new PipeReader([{ fd: a.readFd, stats: [], readAtBytes: 0 }], 50, () => {});
    await r.ready;
    r.stopSync();
    await expect(r.take()).rejects.toThrow(/stopped/);
  });
});
