// bin/bundle.mjs: an entry's bundle runs as its sources would (their own import.meta), is reused
// while they are unchanged and rebuilt when one changes; where none can be made the caller is told.
import { chmodSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, expect, test } from 'vitest';
import { bundled, ENTRIES } from '../../bin/bundle.mjs';

const dir = mkdtempSync(path.join(os.tmpdir(), 'fusecert-bundle-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test('a bundle sees each source at its own place, and is rebuilt when a source changes', async () => {
  const src = path.join(dir, 'src');
  const lib = path.join(src, 'lib');
  for (const d of [src, lib]) rmSync(d, { recursive: true, force: true });
  await execa('mkdir', ['-p', lib]);
  writeFileSync(path.join(lib, 'where.ts'), 'export const where: string = import.meta.dirname;\nexport const n: number = 1;\n');
  writeFileSync(
    path.join(src, 'main.ts'),
    "import { where, n } from './lib/where.ts';\nconsole.log(JSON.stringify({ where, n, me: import.meta.filename }));\n",
  );
  const cache = path.join(dir, 'cache');
  const entry = path.join(src, 'main.ts');
  const b = await bundled(entry, cache);
  expect(b).toMatch(/^.*\/cache\/main-[0-9a-f]{8}\.mjs$/);
  const run = async (file: string) => JSON.parse((await execa(process.execPath, [file])).stdout);
  expect(await run(b!)).toEqual({ where: lib, n: 1, me: entry });
  // a second process finds it fresh and does not rebuild (the bundle's mtime stays)
  const again = await execa(process.execPath, [
    '--input-type=module',
    '-e',
    `import { bundled } from ${JSON.stringify(path.resolve('bin/bundle.mjs'))}; console.log(await bundled(${JSON.stringify(entry)}, ${JSON.stringify(cache)}))`,
  ]);
  expect(again.stdout).toBe(b);
  // an edited source (new size and mtime): the next process rebuilds
  writeFileSync(path.join(lib, 'where.ts'), 'export const where: string = import.meta.dirname;\nexport const n: number = 22;\n');
  utimesSync(path.join(lib, 'where.ts'), new Date(), new Date(Date.now() + 5000));
  const third = await execa(process.execPath, [
    '--input-type=module',
    '-e',
    `import { bundled } from ${JSON.stringify(path.resolve('bin/bundle.mjs'))}; console.log(await bundled(${JSON.stringify(entry)}, ${JSON.stringify(cache)}))`,
  ]);
  expect(third.stdout).toBe(b);
  expect((await run(b!)).n).toBe(22);
});

test('a cache that cannot be written and holds no bundle: null, and the caller uses tsx', async () => {
  const ro = path.join(dir, 'ro');
  await execa('mkdir', ['-p', ro]);
  writeFileSync(path.join(dir, 'x.ts'), 'export {};\n');
  chmodSync(ro, 0o555);
  // root writes anywhere: the check is made as an ordinary user where there is root
  const asUser = process.getuid?.() === 0 ? ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--'] : [];
  chmodSync(dir, 0o755);
  const r = await execa(asUser[0] ?? process.execPath, [
    ...asUser.slice(1),
    ...(asUser.length ? [process.execPath] : []),
    '--input-type=module',
    '-e',
    `import { bundled } from ${JSON.stringify(path.resolve('bin/bundle.mjs'))}; console.log(String(await bundled(${JSON.stringify(path.join(dir, 'x.ts'))}, ${JSON.stringify(path.join(ro, 'c'))})))`,
  ]);
  expect(r.stdout).toBe('null');
});

test("fusecert's own entries exist (a renamed entry would silently run through tsx)", async () => {
  const { existsSync } = await import('node:fs');
  for (const e of ENTRIES) expect(existsSync(e), e).toBe(true);
});

test("an entry's bundle holds the npm packages it uses (not vitest's), and is stale when bundle.mjs changes", async () => {
  const { readFileSync } = await import('node:fs');
  const cache = path.join(dir, 'entries');
  const guardian = ENTRIES.find((e) => e.endsWith('guardian.ts'))!;
  const b = await bundled(guardian, cache);
  expect(b).not.toBeNull();
  const imports = [...readFileSync(b!, 'utf8').matchAll(/^import .* from "([^"]+)";$/gm)].map((m) => m[1]);
  // the guardian uses execa: as a module graph of its own it was half the guardian's CPU
  expect(imports.filter((m) => !m.startsWith('node:'))).toEqual([]);
  const meta = JSON.parse(readFileSync(b!.replace(/\.mjs$/, '.json'), 'utf8')) as { inputs: Record<string, unknown> };
  expect(Object.keys(meta.inputs)).toContain(path.resolve('bin/bundle.mjs'));
  expect(Object.keys(meta.inputs).some((f) => f.includes('/node_modules/execa/'))).toBe(true);
});
