// The run environment: what `fusecert run` hands to the suite workers it starts. vitest's forks
// inherit the runner's environment, so the handoff travels in environment variables; this module
// is the only one that names them. The runner calls handOff(); a worker (and the runner's own
// preflight) reads received(). mount/ and evidence/ never read the environment: they get their
// registry directory and tracefs instance prefix from the caller (harness/setup.ts, cli/run.ts).

const VAR = {
  contextFile: 'FUSECERT_CONTEXT',
  registryDir: 'FUSECERT_STATE_DIR',
  runPid: 'FUSECERT_RUN_PID',
  rewordSkips: 'FUSECERT_TEST_REWORD_SKIPS',
  strictTests: 'FUSECERT_STRICT',
  guardianLog: 'FUSECERT_GUARDIAN_LOG',
  cleanupLog: 'FUSECERT_CLEANUP_LOG',
  guest: 'FUSECERT_GUEST',
} as const;

export interface Handoff {
  /** the RunContext JSON (harness/context.ts) */
  contextFile: string;
  /** where resources are registered for the sweep (mount/registry.ts) */
  registryDir: string;
  /** the runner's pid: tracefs instances are named after it, so a dead run's are found */
  runPid: number;
}

export interface Received {
  contextFile: string | null;
  registryDir: string | null;
  runPid: number;
  /** a self-test's switch: every skip reason is rewritten (harness/clause.ts) */
  rewordSkips: boolean;
  /** fusecert's own tests: a missing tool or privilege fails instead of skipping (CI) */
  strictTests: boolean;
  /** a file the guardian of a killed run appends what it swept to (debugging) */
  guardianLog: string | null;
  /** a file the runner, its workers and its guardian append their cleanup trace to (mount/trace.ts) */
  cleanupLog: string | null;
  /** set by a UML guest's init (src/kernel/guest.ts): the guest kernel and how it was built */
  guest: GuestInfo | null;
}

/** What a run inside a User-Mode Linux guest records about its machine (results.json platform.guest). */
export interface GuestInfo {
  kind: 'uml';
  /** the guest kernel's release */
  kernel: string;
  /** what the kernel was built from */
  source: string;
  /** options of src/kernel/uml.config the release lacks */
  absent: string[];
  /** the host's release */
  host: string;
}

function parseGuest(v: string | undefined): GuestInfo | null {
  if (!v) return null;
  try {
    return JSON.parse(v) as GuestInfo;
  } catch {
    return null;
  }
}

/** Runner side: hand these to every worker started from now on. Returns the undo. */
export function handOff(h: Partial<Handoff>): () => void {
  const set: string[] = [];
  for (const [k, v] of Object.entries(h) as [keyof Handoff, string | number][]) {
    process.env[VAR[k]] = String(v);
    set.push(VAR[k]);
  }
  return () => {
    for (const name of set) delete process.env[name];
  };
}

/** Worker side: what the runner handed over (nothing outside a run). */
export function received(env: NodeJS.ProcessEnv = process.env): Received {
  return {
    contextFile: env[VAR.contextFile] || null,
    registryDir: env[VAR.registryDir] || null,
    runPid: Number(env[VAR.runPid]) || process.pid,
    rewordSkips: env[VAR.rewordSkips] === '1',
    strictTests: !!env[VAR.strictTests],
    guardianLog: env[VAR.guardianLog] || null,
    cleanupLog: env[VAR.cleanupLog] || null,
    guest: parseGuest(env[VAR.guest]),
  };
}

/** The names the run hands over itself: a guest gets a run of its own, never these from the host. */
export const HANDOFF_VARS: readonly string[] = [VAR.contextFile, VAR.registryDir, VAR.runPid, VAR.guardianLog, VAR.cleanupLog, VAR.guest];

/** For a self-test that runs the CLI with the rewording switch on. */
export const REWORD_SKIPS_ENV = { [VAR.rewordSkips]: '1' } as const;
