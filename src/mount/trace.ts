// A timestamped record of what a run creates and sweeps, one line per step, for finding cleanup
// races (issue 25): `FUSECERT_CLEANUP_LOG=FILE fusecert run ...` makes the runner, its workers and
// its guardian append to FILE. Off (one null check) unless a caller sets the file.
import { appendFileSync } from 'node:fs';

let file: string | null = null;

/** Where this process appends its cleanup trace (null: nowhere). Set by the caller from runenv. */
export function useCleanupTrace(f: string | null): void {
  file = f;
}

/** `<epoch ms with µs> <pid> <what>`; never throws. A function is called only when tracing is on. */
export function traceCleanup(what: string | (() => string)): void {
  if (!file) return;
  try {
    const line = typeof what === 'function' ? what() : what;
    appendFileSync(file, `${(performance.timeOrigin + performance.now()).toFixed(3)} ${process.pid} ${line}\n`);
  } catch {
    /* nowhere to log */
  }
}
