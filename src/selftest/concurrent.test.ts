// Two fusecert runs at once on one machine (issue 14): separate state dirs, cgroups and tracefs
// instances, neither sweeps the other, both certify, nothing is left, and the PRF figures of the
// one that measured while the other ran say so, naming the other runner.
import { describe, expect, test } from 'vitest';
import { startRun } from './killrun.ts';
import { missing } from './util.ts';

const why = missing('root', 'fuse', 'tracefs', 'ptfs');

describe.skipIf(why)(`two runs at the same time${why ? ` (skipped: ${why})` : ''}`, () => {
  test('both certify ptfs, neither touches the other, PRF names the other run', async () => {
    // long enough to outlast the other run's start and its PRF (RW,BKG,MAP,IOM,SPL alone once ended first)
    const busy = startRun(['run', '--server', 'servers/ptfs/manifest.json', '--family', 'RW,BKG,MAP,IOM,SPL,ATT,FSX', '--seed', '7']);
    // PRF starts while the other run is in its clauses (its first mount exists)
    const t0 = Date.now();
    while (
      Date.now() - t0 < 60_000 &&
      !(await import('node:fs')).readdirSync('/sys/kernel/tracing/instances').some((i) => i.startsWith(`fusecert-${busy.pid}-`))
    )
      await new Promise((r) => setTimeout(r, 100));
    const timing = startRun(['run', '--server', 'servers/ptfs/manifest.json', '--family', 'PRF', '--seed', '7']);
    const [a, b] = await Promise.all([busy.done, timing.done]);
    for (const [name, r, other] of [
      ['busy', a, timing.pid],
      ['timing', b, busy.pid],
    ] as const) {
      expect(r.exitCode, `${name}: ${r.output.slice(-2000)}`).toBe(0);
      expect(r.left, name).toEqual([]);
      // no state dir of a dead run in its own TMPDIR; cgroups and tracefs instances are the
      // machine's, and a dead run of another test file beside this one (killed.test.ts kills
      // runners) may be swept, but never the other of these two (its pid is in their names)
      expect(r.output, name).not.toMatch(/state of a dead run|left behind by a suite/);
      expect(
        r.output.split('\n').filter((l) => /dead run|killed cgroup/.test(l) && l.includes(`fusecert-${other}-`)),
        name,
      ).toEqual([]);
      // a throughput ratio (PRF, SHOULD) may drop under the other run's load: that is what the note is for
      expect(
        r.results!.clauses.filter((c) => c.level === 'MUST' && (c.status === 'fail' || c.status === 'hung')).map((c) => c.id),
        name,
      ).toEqual([]);
    }
    const prf = b.results!.clauses.filter((c) => c.id.startsWith('PRF-'));
    expect(prf.length).toBeGreaterThan(0);
    for (const c of prf) {
      expect(String(c.evidence.concurrentRuns), c.id).toMatch(new RegExp(`pid ${busy.pid} in \\d+ of \\d+ samples`));
      expect(c.reason, c.id).toMatch(/another fusecert run was active during these measurements/);
    }
    // the busy run's own clauses are not timing clauses: no such note
    for (const c of a.results!.clauses) expect(c.evidence.concurrentRuns, c.id).toBeUndefined();
  }, 600_000);
});
