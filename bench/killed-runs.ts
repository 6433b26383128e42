// Kill `fusecert run` at random moments with random signals and count what each run left behind
// within 5 s of its death, without starting another run (issues 14 and 25).
//   npx tsx bench/killed-runs.ts [N=30] [--family RW,BKG,MAP,IOM] [--signals INT,TERM,KILL]
//        [--phase any,traced] [--from 2] [--to 14] [--window 5] [--trace] [--kernel uml:6.12]
//        [--server MANIFEST[@VARIANT]]
// --phase picks the moment of each run at random from the list: `any` from..to seconds after the
// start; `traced` 0..window seconds after the run's first tracefs instance appeared (the start of
// the evidence sessions: workers open theirs at once, each starting a tracer, a server and two
// instances); `mounted`, `clause` and `preflight` as in src/selftest/killrun.ts. --trace: each run
// writes its cleanup trace (FUSECERT_CLEANUP_LOG), kept for a dirty run and named in its row.
// --kernel: the runs certify inside that UML guest (issue 22); what the guest leaves is the
// kernel's processes (they inherit the host run's FUSECERT_STATE_DIR) and the control directory.
// --server (default servers/ptfs/manifest.json): e.g. servers/passthrough_hp/manifest.json@io-uring
// (PASSTHROUGH_HP set), whose runs hold the fuse module's enable_uring: a hold or a changed value
// left behind counts as `kernel parameter`.
import { parseArgs } from 'node:util';
import { killRun, type KilledRun, type Phase } from '../src/selftest/killrun.ts';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    family: { type: 'string', default: 'RW,BKG,MAP,IOM' },
    signals: { type: 'string', default: 'INT,TERM,KILL' },
    phase: { type: 'string', default: 'any' },
    from: { type: 'string', default: '2' },
    to: { type: 'string', default: '14' },
    window: { type: 'string', default: '5' },
    trace: { type: 'boolean', default: false },
    kernel: { type: 'string' },
    server: { type: 'string', default: 'servers/ptfs/manifest.json' },
  },
});
const n = Number(positionals[0] ?? 30);
const sigs = values.signals!.split(',').map((s) => `SIG${s}` as NodeJS.Signals);
const phases = values.phase!.split(',') as Phase[];
for (const p of phases)
  if (!['any', 'traced', 'mounted', 'clause', 'preflight'].includes(p)) throw new Error(`--phase ${p}: any, traced, mounted, clause or preflight`);
const [from, to, window] = [Number(values.from) * 1000, Number(values.to) * 1000, Number(values.window) * 1000];
const pick = <T>(a: T[]): T => a[Math.floor(Math.random() * a.length)]!;

const runs: KilledRun[] = [];
const kinds = new Map<string, number>();
for (let i = 0; i < n; i++) {
  const signal = pick(sigs);
  const phase = pick(phases);
  const at = phase === 'any' ? Math.round(from + Math.random() * (to - from)) : Math.round(Math.random() * window);
  const aim = phase === 'any' ? `at ${(at / 1000).toFixed(1)} s` : `${phase}+${(at / 1000).toFixed(1)} s`;
  let r: KilledRun;
  try {
    const kernel = values.kernel ? ['--kernel', values.kernel] : [];
    r = await killRun(['run', ...kernel, '--server', values.server!, '--family', values.family!], {
      phase,
      afterMs: at,
      signal,
      trace: values.trace,
    });
  } catch (_e) {
    console.log(`${String(i + 1).padStart(3)} ${signal.padEnd(7)} ${aim.padEnd(14)} the run ended before the signal; again`);
    i--;
    continue;
  }
  runs.push(r);
  for (const l of r.left) {
    const kind = l.startsWith('bpf program') ? 'bpf program' : l.startsWith('kernel parameter') ? 'kernel parameter' : l.split(' ')[0]!;
    kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
  }
  const what = r.cleanMs !== null ? `(clean after ${r.cleanMs} ms)` : `: ${r.left.join(', ')}${r.traceFile ? `  [trace ${r.traceFile}]` : ''}`;
  console.log(
    `${String(i + 1).padStart(3)} ${signal.padEnd(7)} ${aim.padEnd(14)} killed at ${(r.killedAtMs / 1000).toFixed(1).padStart(5)} s  live resources ${String(r.before.length).padStart(2)}  -> left ${r.left.length} ${what}`,
  );
}

const dirty = runs.filter((r) => r.left.length);
console.log(`\n${n} runs killed: ${n - dirty.length} left nothing within 5 s, ${dirty.length} left something`);
const by = new Map<string, { runs: number; dirty: number; clean: number[] }>();
for (const r of runs) {
  const k = `${r.signal.padEnd(7)} ${r.phase}`;
  const e = by.get(k) ?? { runs: 0, dirty: 0, clean: [] };
  e.runs++;
  if (r.left.length) e.dirty++;
  else e.clean.push(r.cleanMs!);
  by.set(k, e);
}
for (const [k, e] of [...by].sort()) {
  const c = e.clean.sort((a, b) => a - b);
  const ms = c.length ? `, clean after ${c[Math.floor(c.length / 2)]} ms median, ${c[c.length - 1]} ms max` : '';
  console.log(`  ${k.padEnd(18)} ${String(e.runs).padStart(3)} runs, ${e.dirty} dirty${ms}`);
}
console.log(`leftovers by kind: ${kinds.size ? [...kinds].map(([k, v]) => `${k} ${v}`).join(', ') : 'none'}`);
process.exitCode = dirty.length ? 1 : 0;
