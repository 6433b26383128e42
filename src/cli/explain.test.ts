// fusecert explain: one failure's story from a results.json, and the ids it accepts.
import { describe, expect, test } from 'vitest';
import type { ClauseResult, Results } from '../report/results.ts';
import { explainText, matchingResults } from './explain.ts';

const failure: ClauseResult = {
  id: 'BKG-002',
  key: { id: 'BKG-002' },
  family: 'BKG',
  level: 'MUST',
  title: 'concurrent opens of one inode share one backing object',
  status: 'fail',
  reason:
    'open(/bkg-002.bin) = EIO (i/o error) — cause: the CREATE reply (unique 20) carried PASSTHROUGH|KEEP_CACHE (0x82) with backing id 2 (SPEC §3; KERNEL-RULES D5); standalone reproducer: python3 reports/repro/BKG-002.py MOUNTPOINT',
  durationMs: 12,
  evidence: {},
  replay: 'fusecert run --server m.json --seed 1 --only BKG-002',
  timeline: ['+0.000 ms  CREATE unique 20 nodeid 1 flags 0o102; server replied error 0, PASSTHROUGH|KEEP_CACHE (0x82) backing id 2 fh 7; kernel ended it OK'],
  rules: ['SPEC §3; KERNEL-RULES D5'],
};
const res = {
  tool: 'fusecert',
  version: '0.1.0',
  started: '2026-12-06T00:00:00Z',
  durationMs: 1,
  platform: { kernel: '6.18', passthrough: 'y', root: true, tracefs: true, replyEvidence: true },
  server: { name: 'ptfs', version: 'ptfs 0.1.0', manifest: 'm.json', claims: {} },
  clauses: [failure, { ...failure, id: 'IOM-001[O_RDONLY+O_RDWR]', key: { id: 'IOM-001', param: 'O_RDONLY+O_RDWR' }, status: 'pass', reason: '' }],
} as unknown as Results;

describe('fusecert explain', () => {
  test('the story: what the user saw, what the server did, the rule, the timeline, how to reproduce', () => {
    const text = explainText(res, failure);
    expect(text).toContain('what the user saw: open(/bkg-002.bin) = EIO (i/o error)');
    expect(text).toContain('what the server did: the CREATE reply (unique 20) carried PASSTHROUGH|KEEP_CACHE (0x82)');
    expect(text).toContain('rule: SPEC §3; KERNEL-RULES D5');
    expect(text).toMatch(/timeline since the clause began[^\n]*\n {2}\+0\.000 ms {2}CREATE unique 20/);
    expect(text).toMatch(/reproduce:\n {2}fusecert run --server m\.json --seed 1 --only BKG-002\n {2}python3 reports\/repro\/BKG-002\.py MOUNTPOINT$/);
  });
  test('without reply evidence it says why the server side is unknown', () => {
    const bare = { ...res, platform: { ...res.platform, replyEvidence: false, replyEvidenceReason: 'not root' } } as Results;
    const text = explainText(bare, { ...failure, reason: 'open(/x) = EIO (i/o error)' });
    expect(text).toContain('what the server did: unknown: the run had no reply evidence (not root)');
  });
  test('an id names the exact result, or every result of the clause', () => {
    expect(matchingResults(res, 'BKG-002')).toHaveLength(1);
    expect(matchingResults(res, 'IOM-001').map((c) => c.id)).toEqual(['IOM-001[O_RDONLY+O_RDWR]']);
    expect(matchingResults(res, 'NEG-001')).toEqual([]);
  });
});
