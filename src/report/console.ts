import type { ClauseResult, Results, Status } from './results.ts';
import { isFailure } from './results.ts';
import { describeFigure } from './baseline.ts';

const tty = process.stdout.isTTY && !process.env.NO_COLOR;
const color = (code: number, s: string) => (tty ? `\x1b[${code}m${s}\x1b[0m` : s);
const STATUS: Record<Status, string> = {
  pass: color(32, 'PASS '),
  fail: color(31, 'FAIL '),
  skip: color(33, 'SKIP '),
  hung: color(35, 'HUNG '),
  xfail: color(36, 'XFAIL'),
  xpass: color(31, 'XPASS'),
};

/** `more`: suite files not collected yet, so the total will still grow (shown as `n/total+`). */
export function progressLine(n: number, total: number | null, r: ClauseResult, more = false): string {
  const count = total ? `${String(n).padStart(String(total).length)}/${total}${more ? '+' : ''}` : String(n);
  const why = r.status === 'pass' ? figureOf(r) : `  ${r.reason.split('\n')[0].slice(0, 160)}`;
  return `[${count}] ${STATUS[r.status]} ${r.id} ${r.title} (${Math.round(r.durationMs)} ms)${why}`;
}

/** A passing PRF-001/002's figure: `  readRatio 0.97 [0.95-0.99], 14 pairs` (nothing for other clauses). */
function figureOf(r: ClauseResult): string {
  const e = r.evidence ?? {};
  for (const key of ['readRatio', 'writeRatio']) {
    const v = e[key];
    if (typeof v !== 'number') continue;
    const lo = e[`${key}Low`];
    const hi = e[`${key}High`];
    const iv = typeof lo === 'number' && typeof hi === 'number' ? ` [${lo}-${hi}]` : '';
    const pairs = typeof e.pairs === 'number' ? `, ${e.pairs} pairs` : '';
    const note = typeof e.inconclusive === 'string' ? ', inconclusive' : typeof e.measurementProblem === 'string' ? ', measurement problem' : '';
    return `  ${key} ${v}${iv}${pairs}${note}`;
  }
  return '';
}

export function summaryTable(res: Results, strict: boolean): string {
  const fams = [...new Set(res.clauses.map((c) => c.family))];
  const cols: Status[] = ['pass', 'fail', 'hung', 'skip', 'xfail', 'xpass'];
  const lines = [`${'family'.padEnd(8)}${cols.map((c) => c.padStart(7)).join('')}`];
  for (const f of fams) {
    const cs = res.clauses.filter((c) => c.family === f);
    lines.push(`${f.padEnd(8)}${cols.map((s) => String(cs.filter((c) => c.status === s).length).padStart(7)).join('')}`);
  }
  const bad = res.clauses.filter((c) => isFailure(c, strict));
  const warn = res.clauses.filter((c) => !isFailure(c, strict) && (c.status === 'fail' || c.status === 'hung' || c.status === 'xpass'));
  const line = (c: ClauseResult) => `  ${c.status.toUpperCase()} [${c.level}] ${c.id}: ${c.reason.split('\n')[0]}`;
  const cmp = res.baseline;
  if (cmp) {
    // New failures first, with their replay commands: they are what fails the run.
    const before = new Map(cmp.new.map((e) => [e.id, e.before]));
    const fresh = bad.filter((c) => before.has(c.id));
    if (fresh.length || cmp.figureDrops.length) {
      lines.push('', 'new failures (not failing in the baseline):');
      for (const c of fresh)
        lines.push(
          `${line(c)} (baseline: ${before.get(c.id) === 'absent' ? 'not run' : before.get(c.id)})`,
          ...(c.replay ? [`      replay: ${c.replay}`] : []),
        );
      for (const f of cmp.figureDrops) lines.push(`  DROP ${f.id}: ${describeFigure(f, cmp.tolerance)}`);
    }
    const known = bad.filter((c) => cmp.known.some((e) => e.id === c.id));
    if (known.length) {
      lines.push('', `known failures (failing in the baseline too): ${known.length}`);
      for (const c of known) lines.push(line(c));
    }
    if (cmp.improved.length) {
      lines.push('', 'improved (failing in the baseline, passing now):');
      for (const e of cmp.improved) lines.push(`  ${e.id} (baseline: ${e.before}: ${e.reason.split('\n')[0]})`);
    }
    if (cmp.figureGains.length) lines.push('', 'figures up:', ...cmp.figureGains.map((f) => `  ${f.id}: ${describeFigure(f, cmp.tolerance)}`));
    if (cmp.notRun.length)
      lines.push(
        '',
        `not run this time: ${cmp.notRun.length} clause(s) of the baseline (${cmp.notRun.slice(0, 8).join(' ')}${cmp.notRun.length > 8 ? ' ...' : ''})`,
      );
  } else if (bad.length) {
    lines.push('', 'failures:');
    for (const c of bad) lines.push(line(c), ...(c.replay ? [`      replay: ${c.replay}`] : []));
  }
  if (warn.length) {
    lines.push('', 'warnings (SHOULD/INFO, or unexpected passes):');
    for (const c of warn) lines.push(`  ${c.status.toUpperCase()} [${c.level}] ${c.id}: ${c.reason.split('\n')[0]}`);
  }
  for (const e of res.errors) lines.push(`  ERROR ${e}`);
  const s = res.summary;
  lines.push(
    '',
    `${res.server.name}: ${s.pass} passed, ${s.fail} failed, ${s.hung} hung, ${s.skip} skipped, ${s.xfail} expected failures, ${s.xpass} unexpected passes ` +
      `(${(res.durationMs / 1000).toFixed(1)} s) -> ${s.mustFailures === 0 && res.errors.length === 0 ? 'CERTIFIED' : 'NOT CERTIFIED'}`,
  );
  if (cmp) {
    lines.push(
      `baseline ${cmp.file} (${cmp.started}): ${cmp.new.length} new, ${cmp.known.length} known, ${cmp.improved.length} improved, ${cmp.figureDrops.length} figure drop(s)` +
        `${cmp.errors ? `, ${cmp.errors} run error(s)` : ''} -> ${cmp.exitCode === 0 ? 'NOTHING WORSE THAN THE BASELINE' : 'WORSE THAN THE BASELINE'} (exit ${cmp.exitCode})`,
    );
  }
  return lines.join('\n');
}
