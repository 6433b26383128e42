// The package as a user gets it: `npm pack`, installed into an empty directory, runs doctor,
// clauses and a certification of a manifest that lives outside the package and points at the
// package's own ptfs, which the first run builds from the C sources the tarball ships.
//
// The install is offline: the empty directory gets a package-lock.json made of fusecert's own
// lock (its production entries) plus the tarball, and `npm ci --offline` takes every dependency
// from the npm cache, where `npm ci` of this checkout put them. So the test needs no registry and
// installs the dependency tree fusecert is tested with.
import { describe, expect, test } from 'vitest';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { missing, leftoversOf, ROOT, strict } from './util.ts';
import { missingTools } from '../cli/ptfs-build.ts';

function why(): string | null {
  const m = missing('root', 'fuse', 'tracefs');
  if (m) return m;
  const tools = missingTools();
  const t = tools.length ? `needs ${tools.join(' and ')} to build ptfs from the packaged sources (apt-get install make gcc)` : null;
  if (t && strict) throw new Error(`FUSECERT_STRICT: ${t}`);
  return t;
}
const skip = why();

// A child npm must not see the npm_* variables of an `npm test` around this test: npm_config_*
// would point it at this checkout (local prefix, cache, ...), and `npm ci` there would replace
// the checkout's node_modules.
const cleanEnv = (extra: Record<string, string>) => ({
  ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k))),
  NO_COLOR: '1',
  ...extra,
});

const sh = (cmd: string, args: string[], cwd: string, env: Record<string, string> = {}) =>
  execa(cmd, args, { cwd, env: cleanEnv(env), extendEnv: false, reject: false, all: true, timeout: 120_000 });

/** A package-lock.json for an app that depends only on the tarball: fusecert's own lock, production entries. */
function lockFor(tarball: string, spec: string): object {
  const own = JSON.parse(readFileSync(path.join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, Record<string, unknown>> };
  const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
  const packages: Record<string, unknown> = {
    '': { name: 'fusecert-pack-test', dependencies: { fusecert: spec } },
    'node_modules/fusecert': {
      version: pkg.version,
      resolved: spec,
      integrity: 'sha512-' + createHash('sha512').update(readFileSync(tarball)).digest('base64'),
      license: pkg.license,
      dependencies: pkg.dependencies,
      bin: pkg.bin,
      engines: pkg.engines,
    },
  };
  for (const [k, v] of Object.entries(own.packages)) {
    if (!k.startsWith('node_modules/') || v.dev) continue;
    const { devOptional, ...entry } = v;
    packages[k] = devOptional ? { ...entry, optional: true } : entry;
  }
  return { name: 'fusecert-pack-test', lockfileVersion: 3, requires: true, packages };
}

describe.skipIf(skip)(`npm package${skip ? ` (skipped: ${skip})` : ''}`, () => {
  test('npm pack; installed offline into an empty directory: doctor, clauses, and run --family NEG on a manifest outside the package build ptfs and certify it', async () => {
    const tmp = mkdtempSync(path.join(os.tmpdir(), 'fusecert-pack-'));
    const packDir = path.join(tmp, 'pack');
    const app = path.join(tmp, 'app');
    const work = path.join(tmp, 'work'); // TMPDIR of the installed CLI: what it leaves is attributable
    for (const d of [packDir, app, work]) mkdirSync(d);
    const times: string[] = [];
    const timed = async <T>(what: string, p: Promise<T>): Promise<T> => {
      const t0 = Date.now();
      const r = await p;
      times.push(`${what} ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      return r;
    };
    const pids: number[] = [];
    try {
      // ---- pack: what ships and what does not
      const packed = await timed('pack', sh('npm', ['pack', '--json', '--pack-destination', packDir], ROOT));
      expect(packed.exitCode, packed.all).toBe(0);
      const info = JSON.parse(packed.stdout)[0] as { filename: string; files: { path: string }[] };
      const files = info.files.map((f) => f.path);
      for (const f of [
        'bin/fusecert.mjs',
        'src/cli/main.ts',
        'src/report/chart.ts',
        'suites/negotiation.test.ts',
        'suites/performance.test.ts',
        'servers/ptfs/main.c',
        'servers/ptfs/defects.c',
        'servers/ptfs/ptfs.h',
        'servers/ptfs/fuse_proto.h',
        'servers/ptfs/Makefile',
        'servers/ptfs/manifest.json',
        'fixtures/trees/basic.json',
        'fixtures/defects.json',
        'vitest.config.ts',
        'README.md',
      ]) {
        expect(files, `${f} is in the tarball`).toContain(f);
      }
      const dev = files.filter(
        (f) =>
          f === 'servers/ptfs/ptfs' ||
          f.endsWith('.o') ||
          /^src\/.*\.test\.ts$/.test(f) ||
          f.startsWith('src/selftest/') ||
          f.includes('testdata') ||
          f.startsWith('fixtures/traces/') ||
          f.startsWith('node_modules/') ||
          f.startsWith('bench/') ||
          f.startsWith('.ci/'),
      );
      expect(dev, "binaries, fusecert's own tests and dev files stay out of the tarball").toEqual([]);
      const tarball = path.join(packDir, info.filename);

      // ---- install into an empty directory, offline
      const spec = `file:../pack/${info.filename}`;
      writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'fusecert-pack-test', private: true, dependencies: { fusecert: spec } }, null, 2));
      writeFileSync(path.join(app, 'package-lock.json'), JSON.stringify(lockFor(tarball, spec), null, 2));
      const inst = await timed('install', sh('npm', ['ci', '--offline', '--no-audit', '--no-fund'], app));
      expect(inst.exitCode, inst.all).toBe(0);
      const pkgDir = path.join(app, 'node_modules/fusecert');
      const ptfs = path.join(pkgDir, 'servers/ptfs/ptfs');
      expect(existsSync(path.join(app, 'node_modules/.bin/fusecert'))).toBe(true);
      expect(existsSync(ptfs), 'the package ships ptfs as sources only').toBe(false);

      const cli = (args: string[]) => sh('npx', ['--offline', '--no', 'fusecert', ...args], app, { TMPDIR: work });

      // ---- doctor: the platform, and the reference server still to be built
      const doctor = await timed('doctor', cli(['doctor']));
      expect(doctor.exitCode, doctor.all).toBe(0);
      expect(doctor.stdout).toMatch(/^ok +reference server ptfs +not built yet: `fusecert run` builds it/m);
      expect(doctor.stdout).toMatch(/^ok +\/dev\/fuse/m);

      // ---- clauses: the catalogue of the installed package
      const clauses = await timed('clauses', cli(['clauses', '--json']));
      expect(clauses.exitCode, clauses.all).toBe(0);
      const catalogue = JSON.parse(clauses.stdout) as { id: string }[];
      const neg = catalogue.map((c) => c.id).filter((id) => id.startsWith('NEG-'));
      expect(neg.length).toBe(7);
      expect(catalogue.length).toBeGreaterThan(50);

      // ---- run: a manifest outside the package, pointing at the package's (not yet built) ptfs
      const own = JSON.parse(readFileSync(path.join(pkgDir, 'servers/ptfs/manifest.json'), 'utf8'));
      const manifest = path.join(tmp, 'ptfs-packaged.json');
      writeFileSync(
        manifest,
        JSON.stringify(
          { ...own, name: 'ptfs-packaged', command: [ptfs, ...own.command.slice(1)], version: [ptfs, '--version'], variants: {}, expect: [] },
          null,
          2,
        ),
      );
      const out = path.join(tmp, 'out');
      const run = cli(['run', '--server', manifest, '--family', 'NEG', '--out', out, '--seed', '7']);
      if (run.pid) pids.push(run.pid);
      const r = await timed('run --family NEG', run);
      expect(r.exitCode, r.all).toBe(0);
      expect(r.stderr).toContain('the reference server is not built: building');
      expect(existsSync(ptfs), 'run built ptfs from the packaged sources').toBe(true);
      expect(
        readdirSync(path.dirname(ptfs)).filter((f) => f.startsWith('.build-') || f.endsWith('.o')),
        'no build debris in the package',
      ).toEqual([]);
      const results = JSON.parse(readFileSync(path.join(out, 'results.json'), 'utf8'));
      expect(results.server.name).toBe('ptfs-packaged');
      expect(results.version).toBe(JSON.parse(readFileSync(path.join(pkgDir, 'package.json'), 'utf8')).version);
      expect(results.clauses.map((c: { id: string }) => c.id).sort()).toEqual([...neg].sort());
      expect(results.clauses.filter((c: { status: string }) => c.status !== 'pass')).toEqual([]);
      expect(readFileSync(path.join(out, 'junit.xml'), 'utf8')).toMatch(new RegExp(`<testsuite name="ptfs-packaged.NEG" tests="${neg.length}" failures="0"`));

      // ---- nothing left behind by the installed CLI
      const left = pids.flatMap((p) => leftoversOf(work, p));
      expect(left).toEqual([]);
      console.log(`pack self-test: ${times.join(', ')}`);
    } finally {
      // whatever a failed run left: its mounts (lazily), then the directory
      for (const l of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
        const mp = l.split(' ')[4];
        if (mp?.startsWith(tmp + '/')) await execa('umount', ['-l', mp], { reject: false });
      }
      rmSync(tmp, { recursive: true, force: true });
    }
  }, 180_000);
});
