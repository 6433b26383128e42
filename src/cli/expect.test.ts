// `fusecert expect`: the entries it writes for a run's failures, and the manifest it merges them into.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { main, type Io } from './commands.ts';
import { expectEntries, mergeExpect, EXPECT_DAYS } from '../report/expect.ts';
import { applyExpectations, type Results } from '../report/results.ts';
import { parseManifest } from '../manifest/index.ts';
import { clauseResult as c, results } from '../report/compare.testdata.ts';
import { ROOT } from '../selftest/util.ts';

const today = new Date('2026-11-23T12:00:00Z');

function run(clauses: ReturnType<typeof c>[], strict = false): Results {
  const r = results('ptfs', clauses);
  r.options.strict = strict;
  return r;
}

describe('expectEntries', () => {
  test('one entry per failure that fails the run, keyed as the results key it, status fail or hung, a TODO reason, 90 days out', () => {
    const r = run([
      c('RW-001', 'pass'),
      c('BKG-003', 'fail', { reason: 'the server still holds 2 backing ids after the last close\nevidence: ...' }),
      c('NEG-001', 'hung', { reason: 'HUNG: no result within 4000 ms' }),
      c('IOM-001[O_RDONLY+O_DIRECT]@passthrough-direct', 'fail', { reason: 'read went to the server' }),
      c('PRF-001', 'fail', { level: 'SHOULD', reason: 'below the threshold' }), // a warning, not a failure
      c('ATT-006', 'xfail'),
      c('RW-004', 'skip', { reason: 'needs tracefs' }),
    ]);
    expect(EXPECT_DAYS).toBe(90);
    expect(expectEntries(r, today)).toEqual([
      { clause: 'BKG-003', status: 'fail', reason: 'TODO: the server still holds 2 backing ids after the last close', expires: '2027-02-21' },
      { clause: 'NEG-001', status: 'hung', reason: 'TODO: HUNG: no result within 4000 ms', expires: '2027-02-21' },
      { clause: 'IOM-001[O_RDONLY+O_DIRECT]@passthrough-direct', status: 'fail', reason: 'TODO: read went to the server', expires: '2027-02-21' },
    ]);
  });

  test("under the run's --strict, SHOULD failures and environment skips count too; an unexpected pass gets no entry", () => {
    const r = run(
      [
        c('PRF-001', 'fail', { level: 'SHOULD', reason: 'below the threshold' }),
        c('RW-004', 'skip', { reason: 'needs tracefs' }),
        c('RW-002', 'xpass', { reason: 'expected fail but it passed' }),
      ],
      true,
    );
    expect(expectEntries(r, today).map((e) => [e.clause, e.status])).toEqual([
      ['PRF-001', 'fail'],
      ['RW-004', 'skip'],
    ]);
  });

  test('an expired entry is carried over with its old reason and status; an empty reason still makes a valid entry', () => {
    const clauses = applyExpectations(
      [c('ATT-006', 'fail'), c('RW-002', 'fail', { reason: '' })],
      [{ clause: 'ATT-006', status: 'fail', reason: 'mtime after msync is cached', expires: '2026-01-01' }],
      today,
    );
    const e = expectEntries(run(clauses), today);
    expect(e).toEqual([
      { clause: 'ATT-006', status: 'fail', reason: 'TODO: renew or fix (was: mtime after msync is cached)', expires: '2027-02-21' },
      { clause: 'RW-002', status: 'fail', reason: 'TODO: explain why RW-002 fails', expires: '2027-02-21' },
    ]);
    // What it writes is what the manifest schema accepts.
    const m = { name: 'ptfs', command: ['/bin/true', '{mountpoint}'], claims: { passthrough: true }, expect: e };
    expect(parseManifest(JSON.stringify(m), 'm.json').expect).toEqual(e);
  });

  test('mergeExpect replaces an entry that covers a new clause (same id, or the base id of a parameter) and keeps the others', () => {
    const old = [
      { clause: 'IOM-001', status: 'fail', reason: 'old reason for every parameter', expires: '2026-01-01' },
      { clause: 'ATT-009', status: 'fail', reason: 'unrelated, kept', expires: '2027-01-01' },
      { clause: 'RW-002@no-passthrough', status: 'fail', reason: 'another variant, kept', expires: '2027-01-01' },
    ];
    const fresh = [
      { clause: 'IOM-001[O_RDONLY+O_DIRECT]', status: 'fail' as const, reason: 'TODO: x', expires: '2027-02-21' },
      { clause: 'RW-002', status: 'fail' as const, reason: 'TODO: y', expires: '2027-02-21' },
    ];
    const m = mergeExpect({ name: 'ptfs', expect: old, claims: {} }, fresh);
    expect(m.manifest.expect).toEqual([old[1], old[2], ...fresh]);
    expect([m.added, m.replaced]).toEqual([2, 1]);
    expect(Object.keys(m.manifest)).toEqual(['name', 'expect', 'claims']); // field order kept
    expect(mergeExpect({ name: 'x' }, fresh).manifest.expect).toEqual(fresh);
  });

  test('a failure for another cause than its entry names gets an entry of its own, and the entry with the match is kept', () => {
    const known = { clause: 'BKG-007', status: 'fail' as const, reason: 'the known bug', expires: '2027-06-30', match: 'carried no flags' };
    const [res] = applyExpectations([c('BKG-007', 'fail', { reason: 'read(/a) = EIO' })], [known], today);
    const e = expectEntries(run([res!]), today);
    expect(e).toEqual([
      {
        clause: 'BKG-007',
        status: 'fail',
        reason:
          'TODO: a cause the old entry (/carried no flags/: the known bug) did not name: read(/a) = EIO [not the expected fail: the expect entry for BKG-007 names /carried no flags/, which this reason does not contain (the known bug)]',
        expires: '2027-02-21',
      },
    ]);
    expect(mergeExpect({ name: 'ptfs', expect: [known] }, e, today).manifest.expect).toEqual([known, ...e]);
    // expired, it is renewed in place like any other entry
    expect(mergeExpect({ name: 'ptfs', expect: [{ ...known, expires: '2026-01-01' }] }, e, today).manifest.expect).toEqual(e);
  });
});

describe('fusecert expect', () => {
  let tmp: string;
  const f: Record<string, string> = {};
  beforeAll(() => {
    tmp = mkdtempSync(path.join(os.tmpdir(), 'fusecert-test-expect-'));
    const res = run([c('BKG-003', 'fail', { reason: 'still holds 2 backing ids' }), c('BKG-008', 'hung', { reason: 'HUNG: no result' }), c('BKG-009', 'pass')]);
    f.results = path.join(tmp, 'results.json');
    writeFileSync(f.results, JSON.stringify(res));
    f.clean = path.join(tmp, 'clean.json');
    writeFileSync(f.clean, JSON.stringify(run([c('BKG-003', 'pass')])));
    f.foreign = path.join(tmp, 'foreign.json');
    writeFileSync(f.foreign, JSON.stringify(run([c('ZZZ-001', 'fail')])));
    f.other = path.join(tmp, 'other.json');
    writeFileSync(f.other, JSON.stringify({ ...res, version: '1.0.0' }));
    // A copy of ptfs's manifest with absolute paths, indented with tabs, with one entry to replace.
    const m = JSON.parse(readFileSync(path.join(ROOT, 'servers/ptfs/manifest.json'), 'utf8'));
    const abs = (argv: string[]) => argv.map((w) => (w.startsWith('./') ? path.join(ROOT, 'servers/ptfs', w) : w));
    m.command = abs(m.command);
    m.version = abs(m.version);
    m.expect = [...m.expect, { clause: 'BKG-003', status: 'skip', reason: 'an entry the new one replaces', expires: '2027-01-01' }];
    f.manifest = path.join(tmp, 'manifest.json');
    writeFileSync(f.manifest, JSON.stringify(m, null, '\t') + '\n');
  });
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  async function call(argv: string[]) {
    let out = '';
    let err = '';
    const io: Io = { out: (t) => void (out += t.endsWith('\n') ? t : t + '\n'), err: (t) => void (err += t + '\n'), cwd: tmp, env: {} };
    return { code: await main(argv, io), out, err };
  }

  test('prints the JSON array by default; -o writes it to a file', async () => {
    const r = await call(['expect', '--from', f.results]);
    expect([r.code, r.err]).toEqual([0, '']);
    const entries = JSON.parse(r.out);
    expect(entries.map((e: { clause: string; status: string }) => [e.clause, e.status])).toEqual([
      ['BKG-003', 'fail'],
      ['BKG-008', 'hung'],
    ]);
    expect(entries[0].reason).toBe('TODO: still holds 2 backing ids');
    expect(entries[0].expires).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    expect((Date.parse(entries[0].expires) - Date.now()) / 86_400_000).toBeGreaterThan(88);
    const o = await call(['expect', '--from', 'results.json', '-o', 'entries.json']);
    expect([o.code, o.out]).toEqual([0, 'expect: 2 entries written to entries.json\n']);
    expect(JSON.parse(readFileSync(path.join(tmp, 'entries.json'), 'utf8'))).toEqual(entries);
    expect((await call(['expect', '--from', f.clean])).out).toBe('[]\n');
  });

  test('--write merges into the manifest, keeps its indentation, and the manifest then loads with the entries', async () => {
    const before = JSON.parse(readFileSync(f.manifest, 'utf8'));
    const r = await call(['expect', '--from', f.results, '--write', 'manifest.json']);
    expect([r.code, r.err, r.out]).toEqual([0, '', 'manifest.json: 2 expect entries added, 1 replaced; replace each TODO with the reason\n']);
    const text = readFileSync(f.manifest, 'utf8');
    expect(text).toMatch(/^\{\n\t"name": "ptfs",/);
    const m = parseManifest(text, f.manifest);
    expect(m.expect.map((e) => e.clause)).toEqual([...before.expect.slice(0, -1).map((e: { clause: string }) => e.clause), 'BKG-003', 'BKG-008']);
    expect(m.expect.find((e) => e.clause === 'BKG-003')?.reason).toBe('TODO: still holds 2 backing ids');
  });

  test('input errors: one line, exit 2, nothing written', async () => {
    const cases: [string[], RegExp][] = [
      [['expect'], /^expect needs --from RESULTS\.json/],
      [['expect', '--from', f.other], /other\.json: written by fusecert 1\.0\.0; this is fusecert 0\.1\.0/],
      [['expect', '--from', '/etc/passwd'], /^\/etc\/passwd: not JSON/],
      [
        ['expect', '--from', f.results, '--write', path.join(ROOT, 'servers/bindfs/manifest.json')],
        /--write .*bindfs\/manifest\.json: the manifest of server bindfs, but the results are of ptfs$/,
      ],
      [['expect', '--from', f.results, '--write', tmp], /--write .*: is a directory; expected the manifest\.json/],
      [['expect', '--from', f.results, '--write', f.results], /results\.json: name: expected string$/],
      [['expect', '--from', f.results, '-o', '/nonexistent/e.json'], /^-o \/nonexistent\/e\.json: directory \/nonexistent does not exist/],
      [['expect', f.results], /^unexpected argument .*results\.json: expect takes only options/],
      [['expect', '--from', f.foreign, '--write', f.manifest], /^--from .*foreign\.json: clause ZZZ-001 is not in the catalogue of fusecert 0\.1\.0/],
      [['expect', '--from', f.results, '-o', '/dev/full'], /^-o \/dev\/full: cannot write it \(ENOSPC\)$/],
    ];
    const manifestBefore = readFileSync(f.manifest, 'utf8');
    for (const [argv, re] of cases) {
      const r = await call(argv);
      expect([r.code, r.out], JSON.stringify(argv)).toEqual([2, '']);
      expect(r.err.split('\n').filter(Boolean), JSON.stringify(argv)).toHaveLength(1);
      expect(r.err.replace(/^fusecert: error: /, '').trimEnd(), JSON.stringify(argv)).toMatch(re);
    }
    expect(readFileSync(f.manifest, 'utf8')).toBe(manifestBefore);
  });
});
