// fusecert is TypeScript run through tsx, so there is no separate JS build to go stale. But some
// of it starts in processes of its own, many times per run: the CLI (once per run; the self-test
// starts about a hundred), the guardian (once per run), the mmap child (about 25 per
// certification). Through tsx each of them compiles its module graph again: measured here, the
// mmap child costs 0.45 s of CPU through tsx and 0.13 s as JS, `fusecert --help` 1.4 s and 0.5 s.
// So such an entry is bundled once with esbuild into node_modules/.cache/fusecert/bundles and
// reused for as long as every one of its sources (each file's size and mtime, recorded beside the
// bundle) is unchanged; a changed source rebuilds it at the next start. Where the cache cannot be
// written (a read-only checkout, as inside a UML guest, or another user's) and holds no fresh
// bundle, the entry runs through tsx as before: slower, never wrong.
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const ROOT = path.resolve(import.meta.dirname, '..');
const CACHE = path.join(ROOT, 'node_modules/.cache/fusecert/bundles');
const memo = new Map();
/**
 * The npm packages an entry imports are bundled too (execa, zod, junit-report-builder, tmp-promise):
 * loaded from node_modules, each is dozens of ES modules to resolve, read and link in every process
 * (measured side by side: `fusecert --help` 0.65-0.69 s of CPU -> 0.32-0.43 s bundled, loading the
 * guardian 0.27-0.37 s -> 0.15 s; README). These stay
 * imports: vitest and vite (the CLI preloads vitest/node and runs the suites with it: one copy),
 * koffi (a native addon), esbuild and tsx (binaries and loader hooks, used only to build or fall back).
 */
const EXTERNAL = ['vitest', 'vitest/*', 'vite', 'koffi', 'esbuild', 'tsx', 'tsx/*', 'fast-check'];
/** A bundled CommonJS package (junit-report-builder) calls require() for node's builtins: an ES module has none. */
const REQUIRE = `import { createRequire as __fusecertRequire } from 'node:module'; const require = __fusecertRequire(${'import.meta'}.url);`;
/** This file's own options shape every bundle: a bundle built by an older bundle.mjs is stale. */
const SELF = path.join(ROOT, 'bin/bundle.mjs');

/**
 * `import.meta` of each source as the source itself would see it (a bundle has one location); each
 * source's size and mtime as it was read, so an edit during the build leaves the bundle stale.
 */
const sourceMeta = (seen) => ({
  name: 'fusecert-import-meta',
  setup(build) {
    build.onLoad({ filter: /\.[cm]?[tj]s$/ }, (args) => {
      const st = statSync(args.path);
      seen.set(args.path, [st.size, st.mtimeMs]);
      const text = readFileSync(args.path, 'utf8')
        .replaceAll('import.meta.dirname', JSON.stringify(path.dirname(args.path)))
        .replaceAll('import.meta.filename', JSON.stringify(args.path))
        .replaceAll('import.meta.url', JSON.stringify(pathToFileURL(args.path).href));
      return { contents: text, loader: /\.[cm]?ts$/.test(args.path) ? 'ts' : 'js' };
    });
  },
});

function fresh(meta) {
  try {
    const m = JSON.parse(readFileSync(meta, 'utf8'));
    for (const [f, [size, mtimeMs]] of Object.entries(m.inputs)) {
      const st = statSync(f);
      if (st.size !== size || st.mtimeMs !== mtimeMs) return false;
    }
    return true;
  } catch {
    return false;
  }
}

async function build(entry, out, meta) {
  const tmp = `${out}.${process.pid}.tmp`;
  const seen = new Map();
  try {
    const { build: esbuild } = await import('esbuild');
    mkdirSync(path.dirname(out), { recursive: true });
    const r = await esbuild({
      entryPoints: [entry],
      outfile: tmp,
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      external: EXTERNAL,
      banner: { js: REQUIRE },
      metafile: true,
      logLevel: 'silent',
      plugins: [sourceMeta(seen)],
    });
    const self = statSync(SELF);
    const inputs = { [SELF]: [self.size, self.mtimeMs] };
    for (const f of Object.keys(r.metafile.inputs)) {
      const abs = path.resolve(f);
      if (seen.has(abs)) inputs[abs] = seen.get(abs);
      else {
        const st = statSync(abs);
        inputs[abs] = [st.size, st.mtimeMs];
      }
    }
    renameSync(tmp, out);
    writeFileSync(`${meta}.${process.pid}.tmp`, JSON.stringify({ entry, inputs }));
    renameSync(`${meta}.${process.pid}.tmp`, meta);
    return fresh(meta); // false when a source was edited while it was bundled: tsx this time
  } catch (e) {
    if (process.env.FUSECERT_BUNDLE_DEBUG) console.error(e); // why an entry runs through tsx
    rmSync(tmp, { force: true });
    return false;
  }
}

/**
 * The JS bundle of a TypeScript entry (absolute path), built or refreshed when needed; null when
 * there is none and none can be built here (the caller runs the entry through tsx).
 */
export async function bundled(entry, cache = CACHE) {
  if (process.env.FUSECERT_NO_BUNDLE) return null;
  const name = `${path.basename(entry).replace(/\.[cm]?ts$/, '')}-${createHash('sha1').update(entry).digest('hex').slice(0, 8)}`;
  const out = path.join(cache, `${name}.mjs`);
  const meta = path.join(cache, `${name}.json`);
  // checked once per process (a worker starts many mmap children)
  if (memo.has(out)) return memo.get(out);
  const ok = fresh(meta) || (await build(entry, out, meta));
  const r = ok ? out : null;
  memo.set(out, r);
  return r;
}

/** Import a TypeScript entry in this process: its bundle, else the source through tsx. */
export async function importEntry(entry) {
  const js = await bundled(entry);
  if (!js) (await import('tsx/esm/api')).register();
  return import(js ?? entry);
}

/** The node arguments that run a TypeScript entry: its bundle, else through tsx. */
export async function nodeArgs(entry) {
  const b = await bundled(entry);
  return b ? [b] : ['--import', 'tsx', entry];
}

/** Every entry fusecert starts as a process of its own. */
export const ENTRIES = ['src/cli/main.ts', 'src/mount/guardian.ts', 'src/harness/mapper-child.ts'].map((f) => path.join(ROOT, f));

/** Build the bundles that are missing or stale now (before a UML guest, whose root is read-only). */
export async function prepareBundles() {
  await Promise.all(ENTRIES.map((e) => bundled(e)));
}
