import { mkdirSync } from 'node:fs';
import path from 'node:path';
import junitModule, { type Builder } from 'junit-report-builder';
import type { Results } from './results.ts';
import { baselineMark, describeFigure } from './baseline.ts';

// The package is CommonJS with a default export; under NodeNext it arrives one level deep.
const junit = ((junitModule as unknown as { default?: Builder }).default ?? junitModule) as unknown as Builder;

/**
 * One testsuite per family; testcase `ID title`; properties for kernel, server and claims. With a
 * baseline, a testcase it has something to say about gets the property `baseline` (new, known,
 * improved) and a failure message starting with `NEW: ` or `KNOWN: `; a figure that dropped beyond
 * the tolerance is a failure of its testcase even when the clause itself passed.
 */
export function writeJUnit(results: Results[], file: string): void {
  const b = junit.newBuilder();
  for (const res of results) {
    const families = [...new Set(res.clauses.map((c) => c.family))];
    for (const fam of families) {
      const suite = b.testSuite().name(`${res.server.name}.${fam}`);
      suite.property('kernel', res.platform.kernel);
      if (res.platform.guest)
        suite.property(
          'machine',
          `User-Mode Linux guest, kernel ${res.platform.guest.kernel} from ${res.platform.guest.source}, host ${res.platform.guest.host}`,
        );
      suite.property('passthrough', res.platform.passthrough);
      suite.property('server', `${res.server.name} ${res.server.version}`);
      suite.property('claims', JSON.stringify(res.server.claims));
      for (const c of res.clauses.filter((x) => x.family === fam)) {
        const tc = suite
          .testCase()
          .className(`fusecert.${res.server.name}.${fam}`)
          .name(`${c.id} ${c.title}`)
          .time(c.durationMs / 1000);
        const details = [
          c.reason,
          c.timeline?.length ? `timeline (what the kernel sent, what the server answered):\n  ${c.timeline.join('\n  ')}` : '',
          Object.keys(c.evidence).length ? `evidence: ${JSON.stringify(c.evidence)}` : '',
          c.replay ? `replay: ${c.replay}` : '',
        ]
          .filter(Boolean)
          .join('\n');
        const mark = baselineMark(res.baseline, c.id);
        if (mark) tc.property('baseline', mark.tag);
        const prefix = mark?.tag === 'new' ? 'NEW: ' : mark?.tag === 'known' ? 'KNOWN: ' : '';
        const drops = mark?.figures.map((f) => `${describeFigure(f, res.baseline!.tolerance)} since the baseline`).join('; ') ?? '';
        if (c.status === 'fail' || c.status === 'hung')
          tc.failure(`${prefix}[${c.level}] ${c.status === 'hung' ? 'HUNG: ' : ''}${c.reason}${drops ? `; ${drops}` : ''}`, c.status).stacktrace(details);
        else if (drops) tc.failure(`${prefix}[${c.level}] ${drops}`, 'baseline').stacktrace(details);
        else if (c.status === 'xpass') tc.failure(`${prefix}[${c.level}] unexpected pass: ${c.reason}`, 'xpass');
        else if (c.status === 'skip' || c.status === 'xfail') tc.skipped().standardOutput(`${prefix}${c.status}: ${c.reason}`);
        else if (details) tc.standardOutput(details);
        if (c.stderr) tc.standardError(c.stderr);
      }
    }
  }
  mkdirSync(path.dirname(file), { recursive: true });
  b.writeTo(file);
}
