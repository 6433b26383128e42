// The diagnosis score over the mutation matrix: every ptfs defect of fixtures/defects.json is
// certified on its families (as the self-test does), and every clause it fails is checked against
// the defect's `cause` pattern for that clause (or its "*" pattern): does the failure name what
// the server did wrong? Prints the score, the clauses whose reason misses it, and writes every
// reason to a JSON file for reading.
//   npx tsx bench/diagnosis-score.ts [--jobs N] [--only DEFECT,...] [--out FILE]
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { causeOf, loadDefects, runOptions } from '../src/selftest/defects.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
const PTFS = path.join(ROOT, 'servers/ptfs/ptfs');
const arg = (name: string) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const jobs = Number(arg('--jobs') ?? 3);
const only = arg('--only')?.split(',');
const outFile = arg('--out') ?? path.join(os.tmpdir(), 'fusecert-diagnosis-score.json');
const matrix = loadDefects(ROOT).filter((e) => !e.environmentError && (!only || only.includes(e.defect)));
const tmp = mkdtempSync(path.join(os.tmpdir(), 'fusecert-diag-'));
const base = JSON.parse(readFileSync(path.join(ROOT, 'servers/ptfs/manifest.json'), 'utf8'));

interface Row {
  defect: string;
  clause: string;
  status: string;
  named: boolean;
  reason: string;
}
const rows: Row[] = [];
let next = 0;
async function worker() {
  while (next < matrix.length) {
    const e = matrix[next++]!;
    const name = `ptfs-${e.defect.replace(/\s+/g, '-').toLowerCase()}`;
    const dir = path.join(tmp, name);
    const manifest = path.join(tmp, `${name}.json`);
    writeFileSync(
      manifest,
      JSON.stringify({ ...base, name, command: [PTFS, ...base.command.slice(1), ...e.args], version: [PTFS, '--version'], variants: {} }),
    );
    await execa(
      'node',
      [path.join(ROOT, 'bin/fusecert.mjs'), 'run', '--server', manifest, '--family', e.families.join(','), ...runOptions(e), '--quiet', '--out', dir],
      {
        reject: false,
      },
    );
    let res: { clauses: { id: string; key?: { id: string }; status: string; reason: string }[] };
    try {
      res = JSON.parse(readFileSync(path.join(dir, 'results.json'), 'utf8'));
    } catch {
      console.log(`${e.defect}: no results`);
      continue;
    }
    for (const c of res.clauses.filter((x) => x.status === 'fail' || x.status === 'hung')) {
      const id = c.key?.id ?? c.id.split(/[[@]/)[0]!;
      const pat = causeOf(e, id);
      rows.push({ defect: e.defect, clause: c.id, status: c.status, named: pat !== undefined && new RegExp(pat).test(c.reason), reason: c.reason });
    }
    const mine = rows.filter((r) => r.defect === e.defect);
    console.log(`${e.defect.padEnd(30)} ${mine.filter((r) => r.named).length}/${mine.length} name the cause`);
  }
}
await Promise.all(Array.from({ length: jobs }, worker));
rmSync(tmp, { recursive: true, force: true });
const named = rows.filter((r) => r.named).length;
// a raw Node error, or a path of the run's temporary mounts (…/mnt/…, …/store/…) instead of the mount's view
const raw = rows.filter((r) => /^E[A-Z]+: |\/(mnt|store)\//.test(r.reason.replace(/; standalone reproducer: .*/, ''))).length;
console.log(
  `\ndiagnosis score: ${named}/${rows.length} failing clause results name the defect's cause (${((100 * named) / Math.max(1, rows.length)).toFixed(0)} %); ${raw} show a raw error or a temporary path`,
);
for (const r of rows.filter((x) => !x.named)) console.log(`  MISSES ${r.defect} ${r.clause}: ${r.reason.slice(0, 300)}`);
writeFileSync(outFile, JSON.stringify(rows, null, 1));
console.log(`reasons: ${outFile}`);
