import { describe, expect, test } from 'vitest';
import { applyExpectations, isFailure, summarise, type ClauseResult } from './results.ts';
import { progressLine } from './console.ts';
import { ClauseCollector } from './reporter.ts';
import type { TestCase } from 'vitest/node';

const r = (id: string, status: ClauseResult['status'], level = 'MUST'): ClauseResult => ({
  id,
  family: id.split('-')[0],
  level,
  title: 't',
  status,
  reason: status === 'pass' ? '' : 'why',
  durationMs: 1,
  evidence: {},
});
const today = new Date('2026-11-23T00:00:00Z');
const exp = (clause: string, expires = '2027-01-01') => ({ clause, status: 'fail' as const, reason: 'known deviation of this server', expires });

describe('expectations', () => {
  test('an expected failure becomes xfail and does not fail the run', () => {
    const [x] = applyExpectations([r('RW-004', 'fail')], [exp('RW-004')], today);
    expect(x.status).toBe('xfail');
    expect(isFailure(x, true)).toBe(false);
  });
  test('a parameterised clause matches its base id', () => {
    expect(applyExpectations([r('IOM-001[a+b]', 'fail')], [exp('IOM-001')], today)[0].status).toBe('xfail');
  });
  test('an entry covers the parameters of its clause but not other variants', () => {
    const [a, b, c] = applyExpectations(
      [r('ATT-006', 'fail'), r('ATT-006@no-passthrough', 'pass'), r('IOM-001[x]@v', 'fail')],
      [exp('ATT-006'), exp('IOM-001@v')],
      today,
    );
    expect([a.status, b.status, c.status]).toEqual(['xfail', 'pass', 'xfail']);
  });
  test('an unexpected pass is xpass: a warning, a failure under --strict', () => {
    const [x] = applyExpectations([r('RW-004', 'pass')], [exp('RW-004')], today);
    expect(x.status).toBe('xpass');
    expect(isFailure(x, false)).toBe(false);
    expect(isFailure(x, true)).toBe(true);
  });
  test('an entry with a match expects only the failures whose reason contains it: another cause stays a failure', () => {
    const e = { ...exp('BKG-007'), match: 'carried no flags \\(0x0\\)' };
    const [x] = applyExpectations([{ ...r('BKG-007', 'fail'), reason: 'the OPEN reply (unique 38) carried no flags (0x0)' }], [e], today);
    expect(x.status).toBe('xfail');
    const [y] = applyExpectations([{ ...r('BKG-007', 'fail'), reason: 'read(/a) = EIO' }], [e], today);
    expect(y.status).toBe('fail');
    expect(y.reason).toMatch(/^read\(\/a\) = EIO \[not the expected fail: the expect entry for BKG-007 names \/carried no flags/);
    expect(y.expectation).toMatchObject({ mismatched: true, match: e.match });
    expect(isFailure(y, false)).toBe(true);
  });
  test('a clause may have one entry per cause: the one whose match the reason contains applies', () => {
    const a = { ...exp('ATT-006'), match: 'mtime did not advance', reason: 'the kernel attribute cache, entry one' };
    const b = { ...exp('ATT-006'), match: 'failed: EIO', reason: 'the mixed-open-modes bug, entry two' };
    const [x, y, z] = applyExpectations(
      [
        { ...r('ATT-006', 'fail'), reason: 'open("/att-006.bin", 0o2) failed: EIO' },
        { ...r('ATT-006', 'fail'), reason: 'mtime did not advance after a store' },
        { ...r('ATT-006', 'fail'), reason: 'size 5 instead of 6' },
      ],
      [a, b],
      today,
    );
    expect([x.status, y.status, z.status]).toEqual(['xfail', 'xfail', 'fail']);
    expect(x.reason).toMatch(/entry two/);
    expect(y.reason).toMatch(/entry one/);
    expect(z.reason).toMatch(/the expect entries for ATT-006 name \/mtime did not advance\/, \/failed: EIO\//);
  });
  test('an expired entry fails the run', () => {
    const [x] = applyExpectations([r('RW-004', 'fail')], [exp('RW-004', '2026-01-01')], today);
    expect(x.status).toBe('fail');
    expect(x.reason).toMatch(/expired on 2026-01-01/);
    expect(isFailure(x, false)).toBe(true);
  });
});

describe('exit status', () => {
  test('MUST failures and hangs fail; SHOULD failures warn unless strict; skips fail only under strict', () => {
    expect(isFailure(r('RW-001', 'fail'), false)).toBe(true);
    expect(isFailure(r('RW-001', 'hung'), false)).toBe(true);
    expect(isFailure(r('ATT-006', 'fail', 'SHOULD'), false)).toBe(false);
    expect(isFailure(r('ATT-006', 'fail', 'SHOULD'), true)).toBe(true);
    expect(isFailure(r('RW-001', 'skip'), false)).toBe(false);
    expect(isFailure(r('RW-001', 'skip'), true)).toBe(true);
    expect(isFailure({ ...r('NEG-004', 'skip'), notApplicable: true }, true)).toBe(false);
  });
  test('summary counts and exit code', () => {
    const s = summarise([r('RW-001', 'pass'), r('RW-002', 'fail'), r('RW-003', 'skip')], false, []);
    expect(s).toMatchObject({ pass: 1, fail: 1, skip: 1, total: 3, mustFailures: 1, exitCode: 1 });
    expect(summarise([r('RW-001', 'pass')], false, ['suite did not load']).exitCode).toBe(1);
  });
});

describe('progress line', () => {
  test('the total is marked partial while suite files are still to be collected', () => {
    expect(progressLine(7, 120, r('RW-001', 'pass'), true)).toMatch(/^\[ {2}7\/120\+\] PASS +RW-001 t \(1 ms\)$/);
    expect(progressLine(120, 120, r('RW-002', 'fail'))).toMatch(/^\[120\/120\] FAIL +RW-002 t \(1 ms\) {2}why$/);
  });
  test('a passing PRF-001/002 shows its figure with the interval and the pairs', () => {
    const prf = { ...r('PRF-001', 'pass'), evidence: { readRatio: 0.97, readRatioLow: 0.95, readRatioHigh: 0.99, pairs: 14 } };
    expect(progressLine(1, 2, prf)).toMatch(/PRF-001 t \(1 ms\) {2}readRatio 0\.97 \[0\.95-0\.99\], 14 pairs$/);
    const odd = { ...r('PRF-002', 'pass'), evidence: { writeRatio: 0.79, writeRatioLow: 0.7, writeRatioHigh: 0.85, pairs: 40, inconclusive: 'x' } };
    expect(progressLine(2, 2, odd)).toMatch(/writeRatio 0\.79 \[0\.7-0\.85\], 40 pairs, inconclusive$/);
  });
});

describe('the watchdog allowance', () => {
  test('grows to the deadline of a long clause while it runs, and back after its result', () => {
    const c = new ClauseCollector(() => {});
    const tc = (id: string, timeout: number) => ({ id, options: { timeout } }) as unknown as TestCase;
    expect(c.allowedIdleMs(40_000)).toBe(40_000);
    c.onTestCaseReady(tc('a', 50_000));
    c.onTestCaseReady(tc('lif-004', 150_000));
    expect(c.allowedIdleMs(40_000)).toBe(150_000);
    c.running.delete('lif-004'); // what onTestCaseResult does first
    expect(c.allowedIdleMs(40_000)).toBe(50_000);
  });
});

describe('durations', () => {
  // vitest gives a skipped test no duration; a clause's skip can come after seconds of work
  const tc = (state: 'passed' | 'skipped', duration: number | undefined, skippedAfterMs?: number) =>
    ({
      id: 'x',
      name: 'PRF-001 t',
      options: {},
      meta: () => ({
        fusecert: {
          id: 'PRF-001',
          key: { id: 'PRF-001' },
          family: 'PRF',
          level: 'SHOULD',
          title: 't',
          evidence: {},
          skippedAfterMs,
          ...(state === 'skipped' ? { skip: { kind: 'not-applicable', reason: 'figures only' } } : {}),
        },
      }),
      result: () => ({ state }),
      diagnostic: () => (duration === undefined ? undefined : { duration }),
    }) as unknown as TestCase;
  test('a skip reports the time until the clause skipped; a pass reports vitest’s duration', () => {
    const c = new ClauseCollector(() => {});
    c.onTestCaseResult(tc('skipped', undefined, 1340));
    c.onTestCaseResult(tc('passed', 878));
    expect(c.results.map((x) => [x.status, x.durationMs])).toEqual([
      ['skip', 1340],
      ['pass', 878],
    ]);
  });
});
