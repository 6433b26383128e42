// Placeholder-free minimal comparison; the full page (issue 8) replaces writeComparison's body.
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import type { Results } from '../report/index.ts';

export function loadResults(files: string[]): Results[] {
  return files.map((f) => JSON.parse(readFileSync(f, 'utf8')) as Results);
}

export function writeComparison(files: string[], target: string): void {
  const runs = loadResults(files);
  const ids = [...new Set(runs.flatMap((r) => r.clauses.map((c) => c.id)))];
  const rows = ids.map((id) => `| ${id} | ${runs.map((r) => r.clauses.find((c) => c.id === id)?.status ?? '-').join(' | ')} |`);
  const md = [`| clause | ${runs.map((r) => r.server.name).join(' | ')} |`, `|---|${runs.map(() => '---').join('|')}|`, ...rows].join('\n');
  mkdirSync(path.dirname(target), { recursive: true });
  writeFileSync(target, target.endsWith('.html') ? `<!doctype html><meta charset="utf-8"><pre>${md.replace(/</g, '&lt;')}</pre>` : md + '\n');
}
