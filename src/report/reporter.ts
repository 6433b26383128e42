// The vitest side of reporting: a plugin over vitest's reporter events that turns test cases into
// ClauseResults. Writers (JSON, JUnit, console) work on ClauseResults only.
import path from 'node:path';
import type { Reporter, TestCase, TestModule } from 'vitest/node';
import type { ClauseMeta } from '../harness/clause.ts';
import { applyExpectations, type ClauseResult } from './results.ts';
import type { Expectation } from '../manifest/index.ts';
import { progressLine } from './console.ts';

export class ClauseCollector implements Reporter {
  results: ClauseResult[] = [];
  errors: string[] = [];
  lastProgress = Date.now();
  /** Clauses running now, with the time vitest allows each (its deadline + 30 s). */
  readonly running = new Map<string, number>();
  private expected = 0;
  private collected = 0;

  /**
   * `files`: how many suite files the run has (0: unknown), so the progress total says when it is
   * partial. `expect`: the manifest's known deviations, so a progress line already says XFAIL
   * (results keep the raw status; the run applies the expectations once at the end).
   */
  constructor(
    private readonly print: (line: string) => void = (l) => process.stdout.write(l + '\n'),
    private readonly files = 0,
    private readonly expect: Expectation[] = [],
  ) {}

  onTestModuleCollected(m: TestModule): void {
    this.expected += [...m.children.allTests()].length;
    this.collected++;
    this.lastProgress = Date.now();
  }

  onTestCaseReady(tc: TestCase): void {
    this.running.set(tc.id, tc.options.timeout ?? 0);
    this.lastProgress = Date.now();
  }

  /**
   * How long the run may go without a result before a watchdog calls it stuck: `floor`, or longer
   * while a clause with a longer deadline (LIF-004, FSX: 120 s) is running.
   */
  allowedIdleMs(floor: number): number {
    return Math.max(floor, ...this.running.values());
  }

  onTestCaseResult(tc: TestCase): void {
    this.running.delete(tc.id);
    this.lastProgress = Date.now();
    const meta = (tc.meta() as { fusecert?: ClauseMeta }).fusecert;
    const res = tc.result();
    const diag = tc.diagnostic();
    const id = meta?.id ?? tc.name.split(' ')[0];
    const r: ClauseResult = {
      id,
      ...(meta?.key ? { key: meta.key } : {}),
      family: meta?.family ?? id.split('-')[0],
      level: meta?.level ?? 'MUST',
      title: meta?.title ?? tc.name,
      status: 'pass',
      reason: '',
      durationMs: diag?.duration ?? 0,
      evidence: meta?.evidence ?? {},
      stderr: meta?.stderr,
      replay: meta?.replay,
    };
    if (res.state === 'failed') {
      r.status = meta?.hung ? 'hung' : 'fail';
      r.reason = (res.errors ?? []).map((e) => e.message).join('\n') || 'failed';
      if (meta?.hung) r.hung = meta.hung;
      if (meta?.timeline?.length) r.timeline = meta.timeline;
      if (meta?.rules?.length) r.rules = meta.rules;
    } else if (res.state === 'skipped') {
      r.status = 'skip';
      // A skip that does not come from clause() (none should) counts as the environment's.
      r.skipKind = meta?.skip?.kind ?? 'environment';
      r.reason = meta?.skip?.reason ?? res.note ?? 'skipped';
      r.notApplicable = r.skipKind === 'not-applicable';
      if (meta?.skippedAfterMs !== undefined) r.durationMs = meta.skippedAfterMs;
    } else if (res.state === 'pending') return;
    this.results.push(r);
    this.print(progressLine(this.results.length, this.expected || null, applyExpectations([r], this.expect)[0], this.collected < this.files));
  }

  onTestModuleEnd(m: TestModule): void {
    this.lastProgress = Date.now();
    for (const e of m.errors()) this.errors.push(`${path.relative(process.cwd(), m.moduleId)}: ${e.message}`);
    // a module that failed before its tests ran (import error, hook failure) has failed tests with no result
    if (m.state() === 'failed' && [...m.children.allTests()].every((t) => t.result().state === 'pending')) {
      this.errors.push(`${path.relative(process.cwd(), m.moduleId)}: the suite did not run`);
    }
  }

  onTestRunEnd(_modules: ReadonlyArray<TestModule>, unhandled: ReadonlyArray<{ message: string }>): void {
    for (const e of unhandled) this.errors.push(`unhandled error: ${e.message}`);
  }
}
