// The runner end to end on real mounts: what issue 3 promises a user of `fusecert run`.
import { describe, expect, test } from 'vitest';
import { writeFileSync, mkdtempSync, rmSync, existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fusecert, ptfsManifest, missing } from '../selftest/util.ts';
import type { Results } from '../report/index.ts';

const why = missing('root', 'fuse', 'ptfs');

describe.skipIf(why)(`fusecert run on real mounts${why ? ` (skipped: ${why})` : ''}`, () => {
  // The plain certification's promises (exit 0, nothing on stderr, a JUnit file a consumer
  // parses, nothing left) are checked on the self-test's full reference run (selftest.test.ts).

  test('a server that hangs on OPEN: affected clauses HUNG within the deadline, others pass, nothing left', async () => {
    const m = ptfsManifest('ptfs-hang-open', ['--defect', 'hang-on', 'OPEN']);
    const r = await fusecert(['run', '--server', m, '--only', 'NEG-001,RW-001,RW-002,LIF-002', '--deadline', '4000', '--seed', '2']);
    expect(r.exitCode).toBe(1);
    expect(r.leftovers).toEqual([]);
    const st = Object.fromEntries(r.results!.clauses.map((c) => [c.id, c.status]));
    expect(st['RW-001']).toBe('hung'); // opens existing files
    expect(st['NEG-001']).toBe('hung');
    expect(st['RW-002']).toBe('pass'); // O_CREAT: a CREATE request, not an OPEN
    expect(st['LIF-002']).toBe('pass');
    const hung = r.results!.clauses.find((c) => c.id === 'RW-001')!;
    expect(hung.reason).toMatch(/HUNG: no result within 4000 ms; \d+ request\(s\) waiting on connection \d+; connection aborted through fusectl/);
    expect(hung.hung).toMatchObject({ deadlineMs: 4000 });
    expect(r.durationMs).toBeLessThan(90_000);
  });

  test('input and environment errors: one line naming the cause, exit 2, nothing mounted', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'fusecert-test-manifests-'));
    try {
      const base = { name: 'x', command: ['/bin/true', '{mountpoint}'], claims: { passthrough: false } };
      const cases: [string, object, RegExp][] = [
        ['typo', { ...base, mountTimoutMs: 1 }, /typo\.json: \(top level\): unknown field "mountTimoutMs"/],
        ['missing', { ...base, command: ['/nonexistent/server', '{mountpoint}'] }, /missing\.json: command\[0\]: executable \/nonexistent\/server not found/],
        [
          'exits',
          { ...base, command: ['/bin/sh', '-c', 'echo cannot start >&2; exit 3', 'x', '{mountpoint}'] },
          /the server exited with code 3 before mounting .*: cannot start/,
        ],
        [
          'never',
          { ...base, command: ['/bin/sh', '-c', 'sleep 30', 'x', '{mountpoint}'], mountTimeoutMs: 1500 },
          /no FUSE mount appeared at .* within 1500 ms/,
        ],
      ];
      for (const [name, manifest, re] of cases) {
        const f = path.join(dir, `${name}.json`);
        writeFileSync(f, JSON.stringify(manifest));
        const r = await fusecert(['run', '--server', f]);
        expect(r.exitCode, name).toBe(2);
        const errLines = r.ownStderr.trim().split('\n');
        expect(errLines, name).toHaveLength(1);
        expect(errLines[0], name).toMatch(re);
        expect(r.leftovers, name).toEqual([]);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('SIGINT during a run cleans up mounts, servers and tracefs instances', async () => {
    const m = ptfsManifest('ptfs-hang-read', ['--no-passthrough', '--defect', 'hang-on', 'READ']);
    const r = await fusecert(['run', '--server', m, '--family', 'RW', '--deadline', '60000'], { signalAfterMs: 6000 });
    expect(r.exitCode).toBe(130);
    expect(r.stderr).toMatch(/SIGINT: cleaning up/);
    expect(r.leftovers).toEqual([]);
  });
});

const whyBindfs = missing('root', 'fuse', 'bindfs');
describe.skipIf(whyBindfs)(`bindfs${whyBindfs ? ` (skipped: ${whyBindfs})` : ''}`, () => {
  test('three servers in one run: a report each, the comparison, the platform facts checked once, nothing left between or after them', async () => {
    const out = mkdtempSync(path.join(os.tmpdir(), 'fusecert-test-out-'));
    try {
      const r = await fusecert([
        'run',
        '--server',
        'servers/ptfs/manifest.json',
        '--server',
        'servers/bindfs/manifest.json',
        '--server',
        'servers/ptfs/manifest.json@passthrough-direct',
        '--only',
        'NEG-001,RW-003,NEG-006',
        '--out',
        out,
      ]);
      expect(r.exitCode, r.stderr).toBe(0);
      expect(r.leftovers).toEqual([]);
      for (const f of [
        'ptfs/results.json',
        'ptfs/junit.xml',
        'bindfs/results.json',
        'bindfs/junit.xml',
        'ptfs@passthrough-direct/results.json',
        'compare.html',
        'compare.md',
      ])
        expect(existsSync(path.join(out, f)), f).toBe(true);
      // NEG-006 rests on PLT-002 and PLT-006: checked for the first server, read by the third
      const factsOf = (name: string) => {
        const res = JSON.parse(readFileSync(path.join(out, name, 'results.json'), 'utf8')) as Results;
        return res.clauses.find((c) => c.id === 'NEG-006')?.evidence.platform as Record<string, string> | undefined;
      };
      expect(factsOf('ptfs')).toEqual({ 'PLT-002': 'honoured', 'PLT-006': 'honoured' });
      expect(factsOf('ptfs@passthrough-direct')).toEqual({
        'PLT-002': 'honoured (checked for ptfs earlier in this run)',
        'PLT-006': 'honoured (checked for ptfs earlier in this run)',
      });
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});
