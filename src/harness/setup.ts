// Loaded into every suite worker (vitest setupFiles). After a connection abort, close(2) of a
// file on the mount returns ENOTCONN (SPEC §5a). Node then keeps such a FileHandle "open" and
// retries the close when the handle is garbage collected, and a failure there is thrown as an
// uncaught exception that would kill the worker and every clause after it. That one error is the
// expected consequence of our own abort; everything else still reaches vitest.
const isAbortedCloseAtGc = (e: unknown) => {
  const err = e as { code?: string; syscall?: string; message?: string };
  return err?.code === 'ENOTCONN' && err.syscall === 'close' && /on garbage collection/.test(err.message ?? '');
};

// A worker runs several suite files (run.ts: isolate off) and this file before each: once per worker.
const g = globalThis as { fusecertWorkerSetUp?: boolean };
const first = !g.fusecertWorkerSetUp;
g.fusecertWorkerSetUp = true;

if (first) {
  const previous = process.listeners('uncaughtException');
  process.removeAllListeners('uncaughtException');
  process.on('uncaughtException', (err, origin) => {
    if (isAbortedCloseAtGc(err)) return;
    if (previous.length === 0) throw err;
    for (const l of previous) l(err, origin);
  });
}

// The worker itself is a resource of the run: if the runner is killed outright, the next run's
// sweep of the dead run ends this worker before it removes the tracefs instances it reads.
import { register, processStart, useRegistry, useCleanupTrace } from '../mount/index.ts';
import { useInstanceOwner, useInstanceRegistry } from '../evidence/index.ts';
import { received } from '../runenv/index.ts';
const handed = received();
useRegistry(handed.registryDir);
useCleanupTrace(handed.cleanupLog);
useInstanceOwner(handed.runPid);
// every evidence session of this worker, whoever opens it, registers its instances before making them
if (handed.registryDir) useInstanceRegistry((dir) => register({ kind: 'tracefs', path: dir }));
if (first) register({ kind: 'process', pid: process.pid, start: processStart(process.pid) });
