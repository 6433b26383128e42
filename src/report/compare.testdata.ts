// Synthetic results for the comparison tests (unit and browser): built in code, no recorded run.
import type { ClauseResult, Results, Status } from './results.ts';

export function clauseResult(id: string, status: Status, opts: Partial<ClauseResult> = {}): ClauseResult {
  return {
    id,
    family: id.split('-')[0]!,
    level: 'MUST',
    title: `title of ${id}`,
    status,
    reason: status === 'pass' ? '' : `reason for ${id}`,
    durationMs: 12,
    evidence: {},
    ...opts,
  };
}

export function results(name: string, clauses: ClauseResult[], opts: { kernel?: string; version?: string; seed?: number; passthrough?: string } = {}): Results {
  const s = { pass: 0, fail: 0, skip: 0, hung: 0, xfail: 0, xpass: 0 } as Record<Status, number>;
  for (const c of clauses) s[c.status]++;
  return {
    tool: 'fusecert',
    version: '0.1.0',
    started: '2026-05-01T10:00:00.000Z',
    durationMs: 83_400,
    platform: { kernel: opts.kernel ?? '6.18.44', passthrough: opts.passthrough ?? 'y', root: true, tracefs: true },
    server: { name, version: opts.version ?? `${name} 1.0`, manifest: `servers/${name}/manifest.json`, claims: { passthrough: true } },
    options: { only: [], families: ['RW', 'PRF'], strict: false, seed: opts.seed ?? 42, jobs: 2, shuffle: false },
    clauses,
    errors: [],
    summary: { ...s, total: clauses.length, mustFailures: s.fail, exitCode: s.fail ? 1 : 0 },
  };
}

/** Two servers: the reference passes everything, the other lacks passthrough and fails a little. */
export function twoRuns(): [Results, Results] {
  const a = results('ptfs', [
    clauseResult('RW-001', 'pass'),
    clauseResult('RW-002', 'pass'),
    clauseResult('RW-002@no-passthrough', 'pass'),
    clauseResult('IOM-001[O_RDONLY+O_DIRECT]', 'pass'),
    clauseResult('PRF-001', 'pass', { level: 'SHOULD', evidence: { readRatio: 0.97, mountMBs: 5120.5, nativeMBs: 5280.25 } }),
    clauseResult('PRF-003', 'pass', { level: 'INFO', evidence: { requestsPerMiB: 0.0123 } }),
  ]);
  const b = results(
    'bindfs',
    [
      clauseResult('RW-001', 'pass'),
      clauseResult('RW-002', 'fail', { reason: 'pread(4097 at 0): byte 17 is 0x00, expected 0x5a <script>alert(1)</script>' }),
      clauseResult('IOM-001[O_RDONLY+O_DIRECT]', 'pass'),
      clauseResult('PRF-001', 'skip', { level: 'SHOULD', reason: 'server does not claim passthrough' }),
      clauseResult('PRF-003', 'skip', { level: 'INFO', reason: 'server does not claim passthrough' }),
    ],
    { version: 'bindfs 1.17.2' },
  );
  return [a, b];
}
