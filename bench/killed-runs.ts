// Kill `fusecert run` at random moments with random signals and count what each run left behind
// within 5 s of its death, without starting another run (issue 14's measure).
//   npx tsx bench/killed-runs.ts [N=30] [--family RW,BKG,MAP,IOM] [--signals INT,TERM,KILL] [--from 2] [--to 14]
import { parseArgs } from 'node:util';
import { killRun } from '../src/selftest/killrun.ts';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    family: { type: 'string', default: 'RW,BKG,MAP,IOM' },
    signals: { type: 'string', default: 'INT,TERM,KILL' },
    from: { type: 'string', default: '2' },
    to: { type: 'string', default: '14' },
  },
});
const n = Number(positionals[0] ?? 30);
const sigs = values.signals!.split(',').map((s) => `SIG${s}` as NodeJS.Signals);
const [from, to] = [Number(values.from) * 1000, Number(values.to) * 1000];
const rows: string[] = [];
let dirty = 0;
for (let i = 0; i < n; i++) {
  const signal = sigs[Math.floor(Math.random() * sigs.length)];
  const at = Math.round(from + Math.random() * (to - from));
  let r;
  try {
    r = await killRun(['run', '--server', 'servers/ptfs/manifest.json', '--family', values.family!], { phase: 'any', afterMs: at, signal });
  } catch (_e) {
    console.log(`${String(i + 1).padStart(2)} ${signal.padEnd(7)} at ${(at / 1000).toFixed(1).padStart(5)} s  the run ended before the signal; again`);
    i--;
    continue;
  }
  if (r.left.length) dirty++;
  const row = `${String(i + 1).padStart(2)} ${signal.padEnd(7)} at ${(r.killedAtMs / 1000).toFixed(1).padStart(5)} s  live resources ${String(r.before.length).padStart(2)}  -> left ${r.left.length}${r.cleanMs !== null ? ` (clean after ${r.cleanMs} ms)` : `: ${r.left.join(', ')}`}`;
  rows.push(row);
  console.log(row);
}
console.log(`\n${n} runs killed: ${n - dirty} left nothing within 5 s, ${dirty} left something`);
process.exitCode = dirty ? 1 : 0;
