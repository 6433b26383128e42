// The last resort when a run's runner and guardian both die: the next run sweeps what it left.
// Runs of other test files may start meanwhile: they sweep what is the machine's (the dead run's
// tracefs instances and cgroup), never its state dir and mounts, which are in its own TMPDIR and
// wait for the next run there.
import { describe, expect, test } from 'vitest';
import { existsSync } from 'node:fs';
import { fusecert, ptfsManifest, missing } from './util.ts';
import { killRun } from './killrun.ts';

const why = missing('root', 'fuse', 'tracefs', 'ptfs');

describe.skipIf(why)(`a dead run${why ? ` (skipped: ${why})` : ''}`, () => {
  test('a run killed outright, runner, guardian, workers and servers at once: the next run removes what it left', async () => {
    // The guardian normally cleans up within 5 s (src/selftest/killed.test.ts); when it dies too,
    // sweepDeadRuns of the next run is the last resort. The workers are killed as well: a worker
    // that outlives its runner closes its evidence sessions on exit, which would leave the next
    // run nothing of that kind to sweep.
    const m = ptfsManifest('ptfs-hang-read2', ['--no-passthrough', '--defect', 'hang-on', 'READ']);
    const killed = await killRun(['run', '--server', m, '--family', 'RW', '--deadline', '60000'], {
      phase: 'traced',
      signal: 'SIGKILL',
      afterMs: 1500,
      graceMs: 1500,
      alsoGuardian: true,
      wholeTree: true,
      // killed at a moment one of its tracefs instances exists (an evidence session ends with its
      // clause: 1.5 s after the first one appeared, the run may be between two)
      live: /^tracefs /,
    });
    expect(killed.exitSignal).toBe('SIGKILL');
    expect(killed.left.some((l) => l.startsWith('mount '))).toBe(true); // nobody could clean up
    const next = await fusecert(['run', '--server', 'servers/ptfs/manifest.json', '--only', 'NEG-001'], { tmp: killed.tmp });
    expect(next.exitCode).toBe(0);
    expect(next.stderr).toMatch(/removed the state of a dead run/);
    expect(next.leftovers).toEqual([]);
    // what existed at the kill (another file's run may have swept some of them since, as it should)
    const instances = killed.before.filter((l) => l.startsWith('tracefs ')).map((l) => l.slice(8));
    expect(instances.length, `at the kill: ${killed.before.join('; ')}`).toBeGreaterThan(0);
    for (const i of instances) expect(existsSync(`/sys/kernel/tracing/instances/${i}`), i).toBe(false);
    const cgroups = killed.left.filter((l) => l.startsWith('cgroup ')).map((l) => l.slice(7));
    for (const c of cgroups) expect(existsSync(c), c).toBe(false);
  });
});
