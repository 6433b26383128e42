// FSX: seeded, shrinking model-based random sequences (fast-check) on one file through the mount.
// FSX-001: pwrite, pread, fstat, ftruncate, O_APPEND write, mmap write + msync, splice write,
// fallocate (KEEP_SIZE, PUNCH_HOLE), close/reopen with random flags, on one fd.
// FSX-002: the same over two fds, interleaved with stores, loads and msync on one long-lived
// MAP_SHARED mapping. Mapped memory is only touched in a child process (src/harness/fsx-model.ts).
// The fast-check seed derives from the run's --seed, so the printed replay command reproduces a failure.
import { clause, forEachVariant, fail, runContext, runFsx } from '../src/harness/index.ts';

const ctx = runContext();
const shellQuote = (s: string) => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replaceAll("'", `'\\''`)}'`);

function seedFor(id: string): number {
  let h = ctx.seed >>> 0;
  for (const ch of id) h = Math.imul(h ^ ch.charCodeAt(0), 0x01000193) >>> 0;
  return h | 0;
}

const FSX = [
  { id: 'FSX-001', level: 'MUST', title: 'seeded random operation sequences on one file agree with a model', twoFds: false },
  { id: 'FSX-002', level: 'MUST', title: 'random sequences over two fds and a shared mapping agree with a model', twoFds: true },
] as const;

forEachVariant({}, (mount, variant) => {
  for (const { id, level, title, twoFds } of FSX) {
    const fullId = `${id}${variant ? `@${variant}` : ''}`;
    const deadlineMs = Math.max(ctx.deadlineMs, 60_000) * 2;
    clause({
      id,
      level,
      title,
      mount,
      deadlineMs,
      body: async (t) => {
        const seed = seedFor(id);
        const replay = `${ctx.replay.replace('{id}', shellQuote(fullId))} --fsx-runs ${ctx.fsxRuns}`;
        const out = await runFsx({ mount, signal: t.signal, twoFds, seed, numRuns: ctx.fsxRuns, timeLimitMs: deadlineMs * 0.6, replay });
        t.note('runs', out.runs);
        t.note('fast-check seed', seed);
        if (out.unsupported.length) t.note('unsupported by the server (treated as no-ops)', out.unsupported);
        if (out.failure) {
          t.note('failure', out.failure);
          fail(out.failure);
        }
      },
    });
  }
});
