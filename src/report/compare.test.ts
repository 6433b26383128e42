import { afterAll, describe, expect, test } from 'vitest';
import { mkdtempSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  buildComparison,
  differenceGroups,
  renderHtml,
  renderMarkdown,
  escapeHtml,
  escapeMd,
  compareIds,
  writeComparison,
  loadResults,
  ResultsInputError,
} from './compare.ts';
import { clauseResult, results, twoRuns } from './compare.testdata.ts';

describe('comparison model', () => {
  test('rows where the servers differ come first within their family', () => {
    const cmp = buildComparison(twoRuns());
    const _rw = cmp.families.find((f) => f.family === 'RW')!;
    const [a, b] = twoRuns();
    const c = buildComparison([a, b, { ...b, server: { ...b.server, name: 'third' }, clauses: b.clauses.map((x) => ({ ...x, status: 'pass' as const })) }]);
    expect(c.families.find((f) => f.family === 'RW')!.rows.map((r) => [r.id, r.differs])).toEqual([
      ['RW-002', true],
      ['RW-001', false],
    ]);
    const iom = buildComparison([b, b]).families.find((f) => f.family === 'RW')!;
    expect(iom.rows.map((r) => [r.id, r.differs])).toEqual([
      ['RW-001', false],
      ['RW-002', false],
    ]);
    const d = buildComparison([b, { ...b, clauses: [clauseResult('RW-001', 'fail'), clauseResult('RW-002', 'fail', { reason: 'x' })] }]);
    expect(d.families.find((f) => f.family === 'RW')!.rows.map((r) => r.id)).toEqual(['RW-001', 'RW-002']);
    const e = buildComparison([b, { ...b, clauses: [clauseResult('RW-001', 'pass'), clauseResult('RW-002', 'pass'), clauseResult('RW-003', 'fail')] }]);
    expect(e.families.find((f) => f.family === 'RW')!.rows.map((r) => [r.id, r.differs])).toEqual(
      [
        ['RW-001', false],
        ['RW-002', true],
        ['RW-003', true],
      ].sort((x, y) => Number(y[1]) - Number(x[1]) || String(x[0]).localeCompare(String(y[0]))),
    );
  });
  test('families follow the catalogue order, not the order of the results file', () => {
    const cmp = buildComparison(twoRuns());
    expect(cmp.families.map((f) => f.family)).toEqual(['IOM', 'RW', 'PRF']);
  });
  test('a variant is a column of its own: ID@variant lands in the row ID', () => {
    const cmp = buildComparison(twoRuns());
    expect(cmp.columns.map((c) => c.label)).toEqual(['ptfs', 'ptfs@no-passthrough', 'bindfs']);
    expect(cmp.runs.map((r) => r.columns)).toEqual([2, 1]);
    const row = cmp.families.flatMap((f) => f.rows).find((r) => r.id === 'RW-002')!;
    expect(row.cells.map((c) => c?.status ?? null)).toEqual(['pass', 'pass', 'fail']);
  });
  test('a clause a variant did not run is a null cell but no difference; one a whole run lacks is', () => {
    const cmp = buildComparison(twoRuns());
    const row = cmp.families.flatMap((f) => f.rows).find((r) => r.id === 'RW-001')!;
    expect(row.cells.map((c) => c?.status ?? null)).toEqual(['pass', null, 'pass']);
    expect(row.differs).toBe(false);
    const [a, b] = twoRuns();
    b.clauses = b.clauses.filter((c) => c.id !== 'RW-001');
    expect(
      buildComparison([a, b])
        .families.flatMap((f) => f.rows)
        .find((r) => r.id === 'RW-001')!.differs,
    ).toBe(true);
  });
  test('ids sort by number, plain before variants and parameters', () => {
    const ids = ['RW-010', 'RW-002@no-passthrough', 'RW-002', 'RW-002[b]', 'RW-001'];
    expect([...ids].sort(compareIds)).toEqual(['RW-001', 'RW-002', 'RW-002[b]', 'RW-002@no-passthrough', 'RW-010']);
  });
  test('environment facts that differ between runs are flagged', () => {
    const [a] = twoRuns();
    const b = results('other', a.clauses, { kernel: '6.12.1', seed: 7 });
    const cmp = buildComparison([a, b]);
    expect([...cmp.environmentDiffers].sort()).toEqual(['kernel', 'seed']);
  });
  test('two runs of the same server get distinct column labels', () => {
    const [a] = twoRuns();
    expect(buildComparison([a, a]).runs.map((r) => r.label)).toEqual(['ptfs #1', 'ptfs #2']);
  });
  test('one run without variants has no differences; with variants, base and variant are compared', () => {
    const [a, b] = twoRuns();
    expect(buildComparison([b]).differences).toBe(0);
    a.clauses.find((c) => c.id === 'RW-002@no-passthrough')!.status = 'fail';
    expect(buildComparison([a]).differences).toBe(1);
  });
});

describe('HTML', () => {
  const html = renderHtml(buildComparison(twoRuns()));
  test('everything from the results file is escaped', () => {
    expect(html).not.toContain('<script>');
    expect(html).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(escapeHtml(`a&b<c>"d'`)).toBe('a&amp;b&lt;c&gt;&quot;d&#39;');
  });
  test('a hostile server name cannot open a tag or break an attribute', () => {
    const [a, b] = twoRuns();
    a.server.name = '"><img src=x onerror=alert(1)>';
    a.clauses[0]!.reason = 'x" onmouseover="alert(1)';
    a.clauses[0]!.status = 'fail';
    const h = renderHtml(buildComparison([a, b]));
    expect(h).not.toMatch(/<img/);
    expect(h).not.toContain('" onmouseover="');
  });
  test('self-contained: no script, no external resource', () => {
    expect(html).not.toMatch(/<script|<link|src=|https?:\/\//i);
  });
  test('header names kernel and server versions; the environment of each run is shown', () => {
    expect(html).toContain('Linux 6.18.44');
    expect(html).toContain('bindfs 1.17.2');
    for (const k of ['passthrough config', 'root', 'tracefs', 'seed', 'jobs', 'strict', 'started', 'duration']) expect(html).toContain(`<td>${k}</td>`);
    expect(html).toContain('83.4 s');
  });
  test('families are collapsible sections; missing clauses show as -', () => {
    expect(html).toMatch(/<details class="family" id="family-RW" open>/);
    expect(html).toContain('<span class="st st-none">-</span>');
  });
  test('the differences section lists differing clauses in order', () => {
    const diffs = html.slice(html.indexOf('<h2>Differences'), html.indexOf('<h2>Clauses'));
    expect(diffs).toContain('Differences (3)');
    expect(diffs.indexOf('RW-002</a>')).toBeLessThan(diffs.indexOf('PRF-001</a>'));
    // each status names the columns that have it
    expect(diffs).toContain('RW-002</a>: pass: ptfs, ptfs@no-passthrough · fail: bindfs');
    expect(diffs).toContain('PRF-001</a>: pass: ptfs · -: ptfs@no-passthrough · skip: bindfs');
    expect(diffs).not.toContain('IOM-001');
    expect(diffs).not.toContain('RW-001');
  });
  test('a parameterised clause is one line of the differences with counts per server, its differing instances behind it', () => {
    const pairs = ['O_RDONLY', 'O_WRONLY', 'O_RDWR', 'O_DIRECT'];
    const a = results(
      'ptfs',
      pairs.map((p) => clauseResult(`IOM-001[${p}]`, 'pass')),
    );
    const b = results(
      'mergerfs',
      pairs.map((p, i) => clauseResult(`IOM-001[${p}]`, i < 3 ? 'fail' : 'pass')),
    );
    const cmp = buildComparison([a, b]);
    expect(differenceGroups(cmp).map((g) => [g.base, g.rows.length, g.total])).toEqual([['IOM-001', 3, 4]]);
    const page = renderHtml(cmp);
    const diffs = page.slice(page.indexOf('<h2>Differences'), page.indexOf('<h2>Clauses'));
    expect(diffs).toContain('IOM-001</a> (3 of 4 instances differ): ptfs 3 pass · mergerfs 3 fail</summary>');
    expect(diffs.match(/<li>/g)).toHaveLength(4); // the group, and its three instances inside it
    expect(diffs).toContain('IOM-001[O_WRONLY]</a>: pass: ptfs · fail: mergerfs');
    expect(diffs).not.toContain('IOM-001[O_DIRECT]');
  });
  test('a failed SHOULD is a warning, and SHOULD/INFO figures are shown', () => {
    const [a, b] = twoRuns();
    b.clauses[3] = clauseResult('PRF-001', 'fail', { level: 'SHOULD', reason: 'read ratio 0.5 < 0.8' });
    const h = renderHtml(buildComparison([a, b]));
    expect(h).toContain('<span class="st st-warn">warn</span>');
    expect(h).toContain('readRatio=0.97');
  });
  test('ids with brackets and @ get valid anchors', () => {
    expect(html).toMatch(/id="c-IOM-001_5bO_RDONLY_2bO_DIRECT_5d"/);
  });
});

describe('Markdown', () => {
  const md = renderMarkdown(buildComparison(twoRuns()));
  test('a table per family with a column per server, differences first and bold', () => {
    expect(md).toContain('| clause | level | ptfs | ptfs@no-passthrough | bindfs |');
    expect(md).toContain('| RW-001 | MUST | pass | - | pass |');
    expect(md).toContain('| IOM-001[O_RDONLY+O_DIRECT] | MUST | pass | - | pass |');
    expect(md).toContain('| **RW-002** | MUST | pass | pass | fail: pread(4097 at 0)');
    const [a, b] = twoRuns();
    const m2 = renderMarkdown(buildComparison([b, { ...b, clauses: b.clauses.map((x) => (x.id === 'RW-001' ? x : { ...x, status: 'pass' as const })) }]));
    const rw = m2.slice(m2.indexOf('## RW'));
    expect(rw.indexOf('**RW-002**')).toBeLessThan(rw.indexOf('| RW-001 |'));
    void a;
  });
  test('pipes, newlines and tags in reasons cannot break the table', () => {
    expect(escapeMd('a|b\nc <i>')).toBe('a\\|b c &lt;i&gt;');
    const [a, b] = twoRuns();
    b.clauses[1]!.reason = 'one | two\nthree';
    const m = renderMarkdown(buildComparison([a, b]));
    const line = m.split('\n').find((l) => l.startsWith('| **RW-002** '))!;
    expect(line).toContain('one \\| two three');
    expect(line.split(/(?<!\\)\|/).length).toBe(7);
  });
  test('the environment table names kernel, passthrough config, seed and duration', () => {
    for (const k of ['kernel', 'passthrough config', 'root', 'tracefs', 'seed', 'jobs', 'strict', 'started', 'duration']) expect(md).toContain(`| ${k} |`);
  });
});

describe('writeComparison', () => {
  test('writes .md as Markdown and anything else as HTML; rejects a file that is not a results file', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'fusecert-compare-'));
    try {
      const [a, b] = twoRuns();
      writeFileSync(path.join(dir, 'a.json'), JSON.stringify(a));
      writeFileSync(path.join(dir, 'b.json'), JSON.stringify(b));
      const files = [path.join(dir, 'a.json'), path.join(dir, 'b.json')];
      writeComparison(files, path.join(dir, 'out/c.md'));
      writeComparison(files, path.join(dir, 'out/c.html'));
      expect(readFileSync(path.join(dir, 'out/c.md'), 'utf8')).toMatch(/^# fusecert comparison: ptfs vs bindfs/);
      expect(readFileSync(path.join(dir, 'out/c.html'), 'utf8')).toMatch(/^<!doctype html>/);
      writeFileSync(path.join(dir, 'junk.json'), '{"x":1}');
      expect(() => writeComparison([path.join(dir, 'junk.json')], path.join(dir, 'x.html'))).toThrow(/junk\.json: not a fusecert results file/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('loadResults: what compare refuses, with the file named', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'fusecert-load-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, content: string | Buffer) => {
    const f = path.join(dir, name);
    writeFileSync(f, content);
    return f;
  };
  const refusal = (f: string, version = '0.1.0') => {
    try {
      loadResults([f], version);
    } catch (e) {
      expect(e).toBeInstanceOf(ResultsInputError);
      expect((e as Error).message.startsWith(f + ': ') || (e as Error).message.startsWith(JSON.stringify(f) + ': ')).toBe(true);
      return (e as Error).message.slice(f.length + 2);
    }
    throw new Error(`${f} was accepted`);
  };
  const good = results('ptfs', [clauseResult('RW-001', 'pass')]);

  test('accepts a results file of the same major version, also a newer minor one', () => {
    expect(loadResults([file('good.json', JSON.stringify(good))], '0.1.0')[0]!.server.name).toBe('ptfs');
    expect(loadResults([file('minor.json', JSON.stringify({ ...good, version: '0.7.3' }))], '0.1.0')).toHaveLength(1);
  });
  test('files that are not results', () => {
    expect(refusal('/etc/passwd')).toMatch(/^not JSON; expected a results\.json/);
    expect(refusal(file('bin.json', Buffer.from([0, 1, 2, 0xff, 0xfe, 0x80])))).toMatch(/^not JSON/);
    expect(refusal(file('empty.json', ''))).toMatch(/^not JSON/);
    expect(refusal(file('array.json', '[1,2]'))).toMatch(/^not a fusecert results file/);
    expect(refusal(file('other.json', '{"name":"x","clauses":[]}'))).toMatch(/^not a fusecert results file/);
    expect(refusal(dir)).toMatch(/^not a regular file \(a directory\)/);
    expect(refusal('/dev/zero')).toMatch(/^not a regular file/);
    expect(refusal(path.join(dir, 'missing.json'))).toMatch(/^no such file/);
  });
  test('results of another major version, or with fields missing or of the wrong type', () => {
    expect(refusal(file('v2.json', JSON.stringify({ ...good, version: '2.0.0' })))).toMatch(
      /^written by fusecert 2\.0\.0; this is fusecert 0\.1\.0, which reads results of version 0\.x/,
    );
    const { version: _v, ...noVersion } = good;
    expect(refusal(file('nover.json', JSON.stringify(noVersion)))).toMatch(/^version: expected string \(expected a results\.json written by fusecert 0\.x\)/);
    const { platform: _p, ...noPlatform } = good;
    expect(refusal(file('noplat.json', JSON.stringify(noPlatform)))).toMatch(/^platform: expected object/);
    const badStatus = { ...good, clauses: [{ ...good.clauses[0]!, status: 'passed' }] };
    expect(refusal(file('status.json', JSON.stringify(badStatus)))).toMatch(/^clauses\[0\]\.status: /);
    const badReason = { ...good, clauses: [{ ...good.clauses[0]!, reason: 42 }] };
    expect(refusal(file('reason.json', JSON.stringify(badReason)))).toMatch(/^clauses\[0\]\.reason: expected string/);
  });
  test('a file name with a newline stays on one line', () => {
    const f = file('a\nb.json', 'x');
    expect(() => loadResults([f])).toThrow(/^"[^\n]*a\\nb\.json": not JSON/);
  });
});
