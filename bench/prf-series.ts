// How much do PRF-001/002 move from run to run, and would baseline gating call that a drop?
// Runs `fusecert run --family PRF` N times in a row for ptfs and every real server named by the
// environment as servers/certify-real.sh takes them (PASSTHROUGH_HP, GO_FUSE_LOOPBACK, MERGERFS),
// optionally with busy loops beside the runs (--hog N: N shell loops, ended by pid afterwards),
// and prints for each server and figure every run's median and ~95 % interval, the spread of the
// medians (half the range, relative to their mean), and, over every ordered pair of runs (one the
// baseline, the other the new run), how many compareWithBaseline() calls a figure drop at the
// default tolerance and the smallest tolerance at which none would be.
//   npx tsx bench/prf-series.ts [runs=5] [--hog N] [--out DIR] [--tolerance R]
//   npx tsx bench/prf-series.ts [runs=5] --from DIR [--tolerance R]   (the saved runs again)
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { compareWithBaseline, DEFAULT_TOLERANCE, FIGURES } from '../src/report/baseline.ts';
import type { Results } from '../src/report/index.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
const argv = process.argv.slice(2);
const opt = (name: string): string | undefined => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv.splice(i, 2)[1] : undefined;
};
const hogs = Number(opt('--hog') ?? 0);
const from = opt('--from'); // a series' directory: analyse its runs again, run nothing
const tolerance = Number(opt('--tolerance') ?? DEFAULT_TOLERANCE);
const out = from ?? opt('--out') ?? mkdtempSync(path.join(os.tmpdir(), 'fusecert-prf-series-'));
const runs = Number(argv[0] ?? 5);

const servers: { name: string; manifest: string }[] = [{ name: 'ptfs', manifest: 'servers/ptfs/manifest.json' }];
for (const [v, name] of [
  ['PASSTHROUGH_HP', 'passthrough_hp'],
  ['GO_FUSE_LOOPBACK', 'go-fuse-loopback'],
  ['MERGERFS', 'mergerfs'],
] as const) {
  const p = process.env[v];
  if (p && existsSync(p)) servers.push({ name, manifest: `servers/${name}/manifest.json` });
  else console.log(`prf-series: ${name} left out: ${v} does not name its binary`);
}

const busy: ChildProcess[] = [];
const stopHogs = () => {
  for (const h of busy.splice(0)) if (h.pid) process.kill(h.pid, 'SIGKILL');
};
process.on('SIGINT', () => {
  stopHogs();
  process.exit(130);
});
for (let i = 0; i < (from ? 0 : hogs); i++) busy.push(spawn('sh', ['-c', 'while :; do :; done'], { stdio: 'ignore' }));

const results = new Map<string, Results[]>(servers.map((s) => [s.name, []]));
const t0 = Date.now();
try {
  for (let i = 1; i <= runs; i++) {
    const dir = path.join(out, `run-${i}`);
    if (from) {
      for (const s of servers) {
        const f = servers.length > 1 ? path.join(dir, s.name, 'results.json') : path.join(dir, 'results.json');
        results.get(s.name)!.push(JSON.parse(readFileSync(f, 'utf8')) as Results);
      }
      continue;
    }
    const args = ['bin/fusecert.mjs', 'run', ...servers.flatMap((s) => ['--server', s.manifest]), '--family', 'PRF', '--quiet', '--out', dir];
    const r = await execa(process.execPath, args, { cwd: ROOT, reject: false, env: { NO_COLOR: '1' } });
    if (r.exitCode !== 0 && r.exitCode !== 1) throw new Error(`run ${i} exited ${r.exitCode}: ${r.stderr || r.stdout.slice(-1500)}`);
    for (const s of servers) {
      const f = servers.length > 1 ? path.join(dir, s.name, 'results.json') : path.join(dir, 'results.json');
      results.get(s.name)!.push(JSON.parse(readFileSync(f, 'utf8')) as Results);
    }
    console.log(`prf-series: run ${i}/${runs} done (${Math.round((Date.now() - t0) / 1000)} s)`);
  }
} finally {
  stopHogs();
}

const CLAUSE: Record<(typeof FIGURES)[number], string> = { readRatio: 'PRF-001', writeRatio: 'PRF-002' };
console.log(
  `\n${runs} runs each, ${from ? 'read again' : hogs ? `${hogs} busy loop(s) beside them` : 'nothing else started beside them'}; results under ${out}`,
);
for (const s of servers) {
  const rs = results.get(s.name)!;
  for (const key of FIGURES) {
    // the clause and each variant of it (PRF-002@no-passthrough): the gate compares them all
    const ids = [
      ...new Set(rs.flatMap((r) => r.clauses.filter((c) => c.id.split('@')[0] === CLAUSE[key] && typeof c.evidence?.[key] === 'number').map((c) => c.id))),
    ];
    for (const id of ids) {
      const cs = rs.map((r) => r.clauses.find((c) => c.id === id));
      const meds = cs.map((c) => c?.evidence?.[key]).filter((v): v is number => typeof v === 'number');
      const cells = cs.map((c) => {
        const e = c?.evidence ?? {};
        if (typeof e[key] !== 'number') return `${c?.status ?? 'absent'}`;
        const flag = e[`${key}Suspect`] ? ' suspect' : typeof e.inconclusive === 'string' ? ' inconclusive' : '';
        return `${e[key]} [${e[`${key}Low`]}-${e[`${key}High`]}] ${e.stop ?? ''}${flag}`;
      });
      const mean = meds.reduce((a, b) => a + b, 0) / (meds.length || 1);
      const spread = meds.length ? ((Math.max(...meds) - Math.min(...meds)) / 2 / mean) * 100 : Number.NaN;
      // every ordered pair: run j against run i as its baseline
      let drops = 0;
      let pairs = 0;
      let needed = 0;
      for (let i = 0; i < rs.length; i++)
        for (let j = 0; j < rs.length; j++) {
          if (i === j) continue;
          pairs++;
          const cmp = compareWithBaseline(rs[j], rs[i], { strict: false, tolerance, file: `run-${i + 1}` });
          if (cmp.figureDrops.some((f) => f.id === id && f.figure === key)) drops++;
          const bl = cs[i]?.evidence?.[`${key}Low`];
          const nh = cs[j]?.evidence?.[`${key}High`];
          if (typeof bl === 'number' && typeof nh === 'number') needed = Math.max(needed, 1 - nh / bl);
        }
      console.log(`${s.name} ${id} ${key}: ${cells.join('; ')}`);
      console.log(
        `  medians ${meds.join(', ')}: spread ±${spread.toFixed(1)} %; figure drops at tolerance ${tolerance}: ${drops}/${pairs} pairs; none from tolerance ${needed.toFixed(3)}`,
      );
    }
  }
}
