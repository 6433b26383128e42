// The process entry of `fusecert` (bin/fusecert.mjs imports it): the commands are in commands.ts,
// main(argv, io) there returns the exit code; this file adds what only a real process has.
import { rmSync } from 'node:fs';
import { childPids, active } from './run.ts';
import { traceCleanup } from '../mount/index.ts';
import { main, processIo, reportError } from './commands.ts';

// A reader that goes away (`fusecert clauses | head`) must not crash a run mid-way and leave its
// mounts: the rest of the output is dropped and the command ends as it would have.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code !== 'EPIPE') throw e;
});

let stopping = false;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    if (stopping) return;
    stopping = true;
    traceCleanup(`runner: ${sig}, guard ${active.guard ? 'set' : 'none'}`);
    console.error(`\nfusecert: ${sig}: cleaning up mounts, servers and tracefs instances of this run`);
    // The guard leaves the run's cgroup, aborts the run's connections, kills the cgroup (workers,
    // servers, whatever they started), unmounts and removes the state dir (src/mount/guardian.ts).
    const guard = active.guard;
    if (guard) {
      try {
        for (const l of guard.abort()) console.error(`  ${l}`);
      } catch (e) {
        console.error(`  cleanup failed, the run's guardian takes over: ${(e as Error).message}`);
      }
    } else {
      for (const p of childPids()) {
        try {
          process.kill(p, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      if (active.stateDir) rmSync(active.stateDir, { recursive: true, force: true }); // made, not yet guarded
    }
    traceCleanup(`runner: exit after ${sig}`);
    process.exit(sig === 'SIGINT' ? 130 : 143);
  });
}

// signals that came while bin/fusecert.mjs loaded this module: handled now, by the handlers above
const pending = (globalThis as { fusecertEarlySignals?: { early: NodeJS.Signals[]; keep: (s: NodeJS.Signals) => void } }).fusecertEarlySignals;
if (pending) {
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.off(sig, pending.keep);
  for (const sig of pending.early.splice(0)) process.emit(sig, sig);
}

const io = processIo();
main(process.argv.slice(2), io).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.exitCode = reportError(e, io); // main() reports its own errors; this is for a bug in doing so
  },
);
