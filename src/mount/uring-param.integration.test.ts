// The enable_uring holds on the real parameter (/sys/module/fuse/parameters/enable_uring) and the
// real state file (/run/fusecert): a hold sets it, the last release restores it, and the hold of a
// process killed outright is dropped, with the value restored, by the dead-run sweep. Needs root
// and a kernel with FUSE over io_uring; every case ends with the parameter as it found it.
import { spawn } from 'node:child_process';
import { afterAll, describe, expect, test } from 'vitest';
import { received } from '../runenv/index.ts';
import { processStart } from './registry.ts';
import { ENABLE_URING, holdUring, readHoldState, releaseUring, selfHolder, sweepUringHolds, uringLeftovers, uringParam } from './uring-param.ts';

const before = uringParam();
const why =
  process.getuid?.() !== 0 ? 'needs root (writes a module parameter)' : before === null ? `needs a kernel with FUSE over io_uring (${ENABLE_URING})` : '';
// CI (FUSECERT_STRICT) runs these or fails: a skip there would hide a missing kernel feature
if (why && received().strictTests) throw new Error(`FUSECERT_STRICT: ${why}`);
// another run holding it meanwhile (a fusecert run certifying an io_uring server) changes what is expected
const busy = readHoldState() !== null;

afterAll(() => {
  // whatever happened above, the value found is the value left
  releaseUring(selfHolder());
  if (before !== null && uringParam() !== before && !readHoldState()) throw new Error(`enable_uring left ${uringParam()}, was ${before}`);
});

describe.skipIf(why || busy)(
  `enable_uring holds on this kernel${why ? ` (skipped: ${why})` : busy ? ' (skipped: another run holds enable_uring now)' : ''}`,
  () => {
    test('a hold sets Y, the release restores the value found', () => {
      const h = holdUring(selfHolder());
      expect(h.original).toBe(before);
      expect(uringParam()).toBe('Y');
      expect(readHoldState()!.holders).toContainEqual(selfHolder());
      expect(releaseUring(selfHolder())).toEqual(before === 'Y' ? [] : [`restored ${ENABLE_URING} to ${before}`]);
      expect(uringParam()).toBe(before);
      expect(readHoldState()).toBeNull();
    });

    test('the hold of a process killed with SIGKILL is counted as left behind, and the sweep restores the value', async () => {
      const child = spawn('sleep', ['60'], { stdio: 'ignore' });
      await new Promise((r) => child.once('spawn', r));
      const holder = { pid: child.pid!, start: processStart(child.pid!) };
      holdUring(holder);
      expect(uringParam()).toBe('Y');
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
      expect(uringLeftovers(holder.pid)).toEqual([
        `kernel parameter enable_uring held for run pid ${holder.pid} (now Y, was ${before})`,
        ...(before === 'Y' ? [] : [`kernel parameter enable_uring left Y (was ${before}) with no living holder`]),
      ]);
      expect(sweepUringHolds()).toEqual([
        `dropped the enable_uring hold of dead run pid ${holder.pid}`,
        ...(before === 'Y' ? [] : [`restored ${ENABLE_URING} to ${before}`]),
      ]);
      expect(uringParam()).toBe(before);
      expect(uringLeftovers(holder.pid)).toEqual([]);
    });
  },
);
