// Standalone reproducers (harness/repro.ts): for each covered family, a run against a ptfs defect
// writes a Python script for the failing clause; the script, with no fusecert, prints the failure
// against a mount of the same defect and nothing wrong against the clean server.
import { describe, expect, test } from 'vitest';
import { mkdtempSync, mkdirSync, rmSync, readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { fusecert, ptfsManifest, missing, PTFS } from './util.ts';

const mountedAt = (mp: string) =>
  readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[4] === mp);

/** ptfs (with ARGS) on fresh directories while FN runs; stopped and removed afterwards. */
async function withPtfs<T>(args: string[], fn: (mnt: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'fusecert-test-repro-'));
  const src = path.join(dir, 'src');
  const mnt = path.join(dir, 'mnt');
  mkdirSync(src);
  mkdirSync(mnt);
  const p = execa(PTFS, ['--source', src, '--mountpoint', mnt, ...args], { reject: false });
  try {
    for (let i = 0; i < 250 && !mountedAt(mnt); i++) await new Promise((r) => setTimeout(r, 20));
    if (!mountedAt(mnt)) throw new Error(`ptfs ${args.join(' ')} did not mount`);
    return await fn(mnt);
  } finally {
    p.kill('SIGTERM');
    await p;
    if (mountedAt(mnt)) await execa('umount', ['-l', mnt], { reject: false });
    rmSync(dir, { recursive: true, force: true });
  }
}

// family -> a defect that breaks it and the covered clauses it fails
const CASES = [
  { family: 'IOM', defect: 'mixed-modes', only: 'IOM-001', script: 'IOM-001.O_APPEND+O_RDONLY.py' },
  { family: 'BKG', defect: 'keep-cache-with-passthrough', only: 'BKG-002', script: 'BKG-002.py' },
  { family: 'ATT', defect: 'stale-attrs', only: 'ATT-001', script: 'ATT-001.py' },
  { family: 'RW', defect: 'ignore-truncate', only: 'RW-004', script: 'RW-004.py' },
];

const why = missing('root', 'fuse', 'tracefs', 'ptfs');

describe.skipIf(why)(`standalone reproducers${why ? ` (skipped: ${why})` : ''}`, () => {
  describe.concurrent('one per covered family', () => {
    for (const c of CASES) {
      test(`${c.family}: ${c.only} against --defect ${c.defect} prints the failure, against clean ptfs nothing wrong`, async () => {
        const out = mkdtempSync(path.join(os.tmpdir(), 'fusecert-test-repro-out-'));
        try {
          const m = ptfsManifest(`ptfs-${c.defect}`, ['--defect', c.defect]);
          const r = await fusecert(['run', '--server', m, '--only', c.only, '--out', out, '--seed', '5']);
          expect(r.exitCode, r.stderr).toBe(1);
          expect(r.leftovers).toEqual([]);
          const results = JSON.parse(readFileSync(path.join(out, 'results.json'), 'utf8')) as { clauses: { status: string; reason: string }[] };
          const failed = results.clauses.filter((x) => x.status === 'fail');
          expect(failed.length).toBeGreaterThan(0);
          // every failure of a covered clause names its script, and the script exists
          for (const f of failed) expect(f.reason).toMatch(/standalone reproducer: python3 \S+\.py MOUNTPOINT/);
          const scripts = readdirSync(path.join(out, 'repro'));
          expect(scripts).toContain(c.script);
          const script = path.join(out, 'repro', c.script);
          const bad = await withPtfs(['--defect', c.defect], (mnt) => execa('python3', [script, mnt], { reject: false }));
          expect(bad.exitCode, bad.stdout).toBe(1);
          expect(bad.stdout).toMatch(/^FAIL: /m);
          const good = await withPtfs([], (mnt) => execa('python3', [script, mnt], { reject: false }));
          expect(good.exitCode, good.stdout).toBe(0);
          expect(good.stdout).toMatch(/^OK: nothing wrong$/m);
          expect(good.stdout).not.toMatch(/FAIL/);
        } finally {
          rmSync(out, { recursive: true, force: true });
        }
      }, 180_000);
    }
  });
});
