// A runner killed outright leaves nothing behind, without a later run: within 5 s of the SIGKILL
// every mount, server process (daemonized too), vitest worker, tracefs instance, temp dir and the
// run's cgroup is gone (issue 14). Each case first checks that the run had live resources at the
// moment of the kill, so a kill that came too early or too late cannot pass.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { killRun, type KilledRun } from './killrun.ts';
import { missing, ptfsManifest, PTFS, strict } from './util.ts';
import { readHoldState, uringParam } from '../mount/uring-param.ts';

const why = missing('root', 'fuse', 'tracefs', 'ptfs');
const ptfsClaims = () => JSON.parse(readFileSync(path.join(import.meta.dirname, '../../servers/ptfs/manifest.json'), 'utf8')).claims as Record<string, unknown>;
const kinds = (r: KilledRun) => new Set(r.before.map((l) => l.split(' ')[0]));
const describeKill = (r: KilledRun) =>
  `killed at ${r.killedAtMs} ms with ${r.before.length} live resources; left after 5 s: ${r.left.join(', ') || 'nothing'}\n${r.output.slice(-1500)}`;

describe.skipIf(why)(`a runner killed with SIGKILL leaves nothing within 5 s${why ? ` (skipped: ${why})` : ''}`, () => {
  test('during preflight, while the server holds the mount without answering', async () => {
    // hang-on GETATTR: the preflight's stat of the root waits on the server for mountTimeoutMs,
    // with a runner thread in a FUSE request the server has read (uninterruptible until abort)
    const m = ptfsManifest('ptfs-hang-getattr', ['--defect', 'hang-on', 'GETATTR']);
    const r = await killRun(['run', '--server', m, '--family', 'RW'], { phase: 'preflight', afterMs: 300, signal: 'SIGKILL' });
    expect(
      r.before.some((l) => /^mount .*\(fuse/.test(l)),
      describeKill(r),
    ).toBe(true);
    expect(
      r.before.some((l) => /^process .*\(ptfs\)/.test(l)),
      describeKill(r),
    ).toBe(true);
    expect(r.output).not.toMatch(/\[\s*\d+\/\d+\]/); // no clause had run: this was the preflight
    expect(r.exitSignal).toBe('SIGKILL');
    expect(r.left, describeKill(r)).toEqual([]);
  }, 120_000);

  test('during a clause, two suite files in parallel', async () => {
    const r = await killRun(['run', '--server', 'servers/ptfs/manifest.json', '--family', 'RW,BKG,MAP,IOM'], {
      phase: 'clause',
      afterMs: 1500,
      signal: 'SIGKILL',
    });
    for (const k of ['mount', 'tracefs', 'process', 'temp', 'cgroup']) expect(kinds(r).has(k), `${k}: ${describeKill(r)}`).toBe(true);
    expect(r.before.filter((l) => /\(ptfs\)/.test(l)).length, describeKill(r)).toBeGreaterThan(0);
    expect(r.left, describeKill(r)).toEqual([]);
  }, 180_000);

  test('during a clause whose server hangs on READ (workers blocked in the kernel)', async () => {
    const m = ptfsManifest('ptfs-hang-read-killed', ['--no-passthrough', '--defect', 'hang-on', 'READ']);
    const r = await killRun(['run', '--server', m, '--family', 'RW', '--deadline', '60000'], { phase: 'traced', afterMs: 3000, signal: 'SIGKILL' });
    expect(kinds(r).has('tracefs'), describeKill(r)).toBe(true);
    expect(r.left, describeKill(r)).toEqual([]);
  }, 180_000);

  test('during a clause of a server that daemonizes into its own session', async () => {
    // setsid: a new session and process group, reparented to init; only the cgroup (or the
    // environment it inherited) still ties it to the run
    const m = ptfsManifest('ptfs-daemon', [], {
      command: ['/bin/sh', '-c', `setsid ${PTFS} --source "$0" --mountpoint "$1" </dev/null >/dev/null 2>&1 &`, '{source}', '{mountpoint}'],
      daemonizes: true,
    });
    // each clause mounts its own server: wait for one that is alive, not the gap between two
    const r = await killRun(['run', '--server', m, '--family', 'RW,BKG'], { phase: 'clause', afterMs: 1000, signal: 'SIGKILL', live: /^process .*\(ptfs\)/ });
    expect(
      r.before.some((l) => /\(ptfs\)/.test(l)),
      describeKill(r),
    ).toBe(true);
    expect(r.left, describeKill(r)).toEqual([]);
  }, 180_000);

  test('during a clause of a server that forked helpers ignoring SIGTERM in their own session', async () => {
    const m = ptfsManifest('ptfs-fork-children-killed', ['--defect', 'fork-children']);
    const r = await killRun(['run', '--server', m, '--family', 'RW,BKG'], { phase: 'clause', afterMs: 1000, signal: 'SIGKILL', live: /^process .*\(ptfs\)/ });
    expect(r.before.filter((l) => /\(ptfs\)/.test(l)).length, describeKill(r)).toBeGreaterThanOrEqual(3); // a server and its 2 helpers at least
    expect(r.left, describeKill(r)).toEqual([]);
  }, 180_000);

  test('during PRF', async () => {
    const r = await killRun(['run', '--server', 'servers/ptfs/manifest.json', '--family', 'PRF'], { phase: 'mounted', afterMs: 2000, signal: 'SIGKILL' });
    expect(
      r.before.some((l) => /^mount .*\(fuse/.test(l)),
      describeKill(r),
    ).toBe(true);
    expect(r.left, describeKill(r)).toEqual([]);
  }, 180_000);
  // A run certifying an io_uring claim holds the fuse module's enable_uring on; its guardian's sweep
  // releases the hold and, as the last holder, writes back the value the run found. The server is
  // ptfs --io-uring claiming io_uring, killed while its rings serve.
  const noUring = uringParam() === null ? 'no FUSE over io_uring in this kernel (/sys/module/fuse/parameters/enable_uring)' : null;
  test.skipIf(noUring && !strict)(
    `while it holds enable_uring for a server claiming io_uring${noUring ? ` (skipped: ${noUring})` : ''}`,
    async () => {
      if (noUring) throw new Error(`FUSECERT_STRICT: ${noUring}`);
      const found = uringParam();
      const others = readHoldState()?.holders.length ?? 0;
      const m = ptfsManifest('ptfs-claims-io-uring', ['--io-uring'], { claims: { ...ptfsClaims(), transport: 'io_uring' } });
      // families enough that the run is still going at the kill (RW alone ended in 2.6 s, before it)
      const r = await killRun(['run', '--server', m, '--family', 'RW,BKG,MAP,ATT'], {
        phase: 'mounted',
        afterMs: 500,
        signal: 'SIGKILL',
        live: /^kernel parameter/,
      });
      expect(
        r.before.some((l) => /^kernel parameter enable_uring held for run pid \d+ \(now Y, was [YN]\)/.test(l)),
        describeKill(r),
      ).toBe(true);
      expect(r.left, describeKill(r)).toEqual([]);
      // with no other holder the value found is back (another run holding it keeps it Y)
      if (others === 0 && !readHoldState()) expect(uringParam()).toBe(found);
    },
    180_000,
  );
});
