import { describe, expect, test } from 'vitest';
import { mkdtempSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildComparison, renderHtml, renderMarkdown, escapeHtml, escapeMd, compareIds, writeComparison } from './compare.ts';
import { clauseResult, results, twoRuns } from './compare.testdata.ts';

describe('comparison model', () => {
  test('rows where the servers differ come first within their family', () => {
    const cmp = buildComparison(twoRuns());
    const rw = cmp.families.find((f) => f.family === 'RW')!;
    expect(rw.rows.map((r) => r.id)).toEqual(['RW-002', 'RW-002@no-passthrough', 'RW-001']);
    expect(rw.rows.map((r) => r.differs)).toEqual([true, true, false]);
    expect(rw.differences).toBe(2);
  });
  test('families follow the catalogue order, not the order of the results file', () => {
    const cmp = buildComparison(twoRuns());
    expect(cmp.families.map((f) => f.family)).toEqual(['IOM', 'RW', 'PRF']);
  });
  test('a clause one server did not run is a null cell, and counts as a difference', () => {
    const cmp = buildComparison(twoRuns());
    const row = cmp.families.flatMap((f) => f.rows).find((r) => r.id === 'RW-002@no-passthrough')!;
    expect(row.cells[0]?.status).toBe('pass');
    expect(row.cells[1]).toBeNull();
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
    expect(buildComparison([a, a]).columns.map((c) => c.label)).toEqual(['ptfs #1', 'ptfs #2']);
  });
  test('one run is no difference', () => {
    const [a] = twoRuns();
    expect(buildComparison([a]).differences).toBe(0);
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
    expect(diffs).toContain('Differences (4)');
    expect(diffs.indexOf('RW-002</a>')).toBeLessThan(diffs.indexOf('PRF-001</a>'));
    expect(diffs).not.toContain('RW-001');
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
    expect(md).toContain('| clause | level | ptfs | bindfs |');
    const rw = md.slice(md.indexOf('## RW'));
    expect(rw.indexOf('**RW-002**')).toBeLessThan(rw.indexOf('| RW-001 |'));
    expect(md).toContain('| **RW-002@no-passthrough** | MUST | pass | - |');
  });
  test('pipes, newlines and tags in reasons cannot break the table', () => {
    expect(escapeMd('a|b\nc <i>')).toBe('a\\|b c &lt;i&gt;');
    const [a, b] = twoRuns();
    b.clauses[1]!.reason = 'one | two\nthree';
    const m = renderMarkdown(buildComparison([a, b]));
    const line = m.split('\n').find((l) => l.startsWith('| **RW-002** '))!;
    expect(line).toContain('one \\| two three');
    expect(line.split(/(?<!\\)\|/).length).toBe(6);
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
      expect(() => writeComparison([path.join(dir, 'junk.json')], path.join(dir, 'x.html'))).toThrow(/no "clauses" array/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
