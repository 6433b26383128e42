// The command line never answers with an internal error (issue 16): fast-check draws argv for every
// command from the real options plus junk, values of every kind, and files of every kind for
// `compare`; each case runs main() in-process. `run` and `doctor` get io.dryRun, so a valid argv
// stops after every check of its inputs, before the platform probe: no case mounts anything.
// A few cases go through the real executable, as a user types them.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import fc from 'fast-check';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync, readdirSync, readFileSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { main, reportError, type Io } from './commands.ts';
import { COMMANDS, commandHelp } from './args.ts';
import { twoRuns } from '../report/compare.testdata.ts';
import { ROOT, CLI } from '../selftest/util.ts';

const PTFS_MANIFEST = path.join(ROOT, 'servers/ptfs/manifest.json');
let tmp: string; // everything a case may write lives here
let cwd: string; // two levels below tmp, so a relative '..' stays inside it
const f: Record<string, string> = {};

beforeAll(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'fusecert-argv-fuzz-'));
  cwd = path.join(tmp, 'a', 'b');
  mkdirSync(cwd, { recursive: true });
  const put = (name: string, content: string | Buffer) => {
    const p = path.join(tmp, name);
    writeFileSync(p, content);
    return p;
  };
  const [a, b] = twoRuns();
  f.resultsA = put('a.json', JSON.stringify(a));
  f.resultsB = put('b.json', JSON.stringify(b));
  f.resultsV2 = put('v2.json', JSON.stringify({ ...a, version: '2.0.0' }));
  f.passwd = put('passwd', readFileSync('/etc/passwd')); // a copy: an argv may make an input the -o target
  f.badManifest = put('bad-manifest.json', JSON.stringify({ name: 'x', command: ['/bin/true'], claims: { passthrough: 'yes' } }));
  f.missingExe = put('missing-exe.json', JSON.stringify({ name: 'y', command: ['/nonexistent/server', '{mountpoint}'], claims: { passthrough: false } }));
  // A second server with a name of its own, for the several-servers forms.
  const ptfs = JSON.parse(readFileSync(PTFS_MANIFEST, 'utf8'));
  const abs = (argv: string[]) => argv.map((w) => (w.startsWith('./') ? path.join(ROOT, 'servers/ptfs', w) : w));
  f.second = put('second.json', JSON.stringify({ ...ptfs, name: 'second', version: abs(ptfs.version), command: abs(ptfs.command) }));
  f.text = put('file.txt', 'not a directory\n');
  f.binary = put('binary.bin', Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0, 0, 0xff, 0xfe]));
  f.dir = path.join(tmp, 'dir');
  mkdirSync(f.dir);
  // A baseline directory as `run --out` writes it for several servers: DIR/NAME/results.json.
  f.baselineDir = path.join(tmp, 'baseline');
  for (const [name, r] of [
    ['ptfs', a],
    ['second', { ...a, server: { ...a.server, name: 'second' } }],
  ] as const) {
    mkdirSync(path.join(f.baselineDir, name), { recursive: true });
    writeFileSync(path.join(f.baselineDir, name, 'results.json'), JSON.stringify(r));
  }
  f.fifo = path.join(tmp, 'fifo');
  execFileSync('mkfifo', [f.fifo]); // reading it would block: must be refused unread
});

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

interface Outcome {
  code: number;
  out: string;
  err: string;
}

async function call(argv: string[], env: Record<string, string> = {}): Promise<Outcome> {
  let out = '';
  let err = '';
  const io: Io = { out: (t) => void (out += t + '\n'), err: (t) => void (err += t + '\n'), cwd, env, dryRun: true };
  const code = await main(argv, io);
  return { code, out, err };
}

const lines = (s: string) => s.split('\n').filter((l) => l !== '');
const HELP_LINES = Math.max(...(Object.keys(COMMANDS) as (keyof typeof COMMANDS)[]).map((c) => lines(commandHelp(c)).length)) + 2;

/** What every answer must look like, whatever the argv. */
function checkAnswer(argv: string[], r: Outcome, outputAllowed: boolean): void {
  const ctx = JSON.stringify(argv);
  expect([0, 1, 2], ctx).toContain(r.code);
  const all = r.out + r.err;
  expect(all, ctx).not.toMatch(/internal error/);
  expect(all, ctx).not.toMatch(/^\s+at .+(:\d+:\d+\)?|<anonymous>)$/m); // a stack frame
  if (r.code === 2) {
    expect(lines(r.err), ctx).toHaveLength(1);
    expect(r.err, ctx).toMatch(/^fusecert: error: \S/);
    expect(r.out, ctx).toBe('');
  } else {
    expect(r.err, ctx).toBe('');
    if (!outputAllowed) expect(lines(r.out).length, ctx).toBeLessThanOrEqual(HELP_LINES);
  }
}

// ---- arbitraries -----------------------------------------------------------------------------

/** Values of every kind: text, numbers in many spellings, empties, option-like words, JSON. */
const junkValue = fc
  .oneof(
    fc.string({ maxLength: 12 }),
    fc.string({ unit: 'binary', maxLength: 8 }),
    fc.integer().map(String),
    fc.double().map(String),
    fc.bigInt().map(String),
    fc.constantFrom(
      '',
      ' ',
      '-',
      '--',
      '-1',
      '0',
      '1',
      '2',
      '007',
      '1e3',
      '0x10',
      '1.5',
      'NaN',
      'Infinity',
      '99999999999999999999',
      ',',
      ',,',
      'RW-001,,NEG',
      '..',
      '.',
      '~',
      '$HOME',
      '\n',
      'a\u2028b',
      'é',
    ),
    fc.jsonValue({ maxDepth: 2 }).map((v) => JSON.stringify(v)),
    // A value may become a path that compare writes to: no '/', so it stays inside this test's directory.
  )
  .filter((v) => !v.includes('/'));

const clauseIds = fc.constantFrom(
  'RW-001',
  'RW-002',
  'NEG-001',
  'BKG-002',
  'IOM-001',
  'ATT-006',
  'rw-001',
  'RW-999',
  'XYZ-001',
  'RW-001,NEG-001',
  'RW-001 NEG-001',
  'RW-001,',
);
const families = fc.constantFrom('PLT', 'NEG', 'RW', 'rw', 'ATT', 'PRF', 'FSX', 'NOPE', 'PLT,NEG', 'RW,ATT', ',');

describe('argv fuzz: one clear answer to every command line', () => {
  const serverValues = () =>
    fc.oneof(
      fc.constantFrom(
        PTFS_MANIFEST,
        `${PTFS_MANIFEST}@no-passthrough`,
        `${PTFS_MANIFEST}@passthrough-direct`,
        `${PTFS_MANIFEST}@nope`,
        `${PTFS_MANIFEST}@`,
        f.badManifest,
        f.missingExe,
        f.dir,
        f.fifo,
        f.text,
        f.binary,
        '/dev/zero',
        '/nonexistent/manifest.json',
        path.relative(cwd, PTFS_MANIFEST),
      ),
      junkValue,
    );
  const outDirs = () =>
    fc.oneof(fc.constantFrom('out', 'reports', 'x/y/z', f.dir, f.text, path.join(f.text, 'sub'), '/proc/fusecert-out', '/sys/fusecert-out', '..'), junkValue);
  const junitFiles = () =>
    fc.oneof(
      fc.constantFrom(
        'j.xml',
        path.join(f.dir, 'j.xml'),
        f.dir,
        '/nonexistent/dir/j.xml',
        path.join(f.text, 'j.xml'),
        '/proc/j.xml',
        '/sys/j.xml',
        'missing/j.xml',
      ),
      junkValue,
    );

  /** One option of `run` with its values: real options with real or junk values, and junk options. */
  const runPiece = (): fc.Arbitrary<string[]> =>
    fc.oneof(
      { weight: 3, arbitrary: fc.array(serverValues(), { minLength: 0, maxLength: 3 }).map((v) => ['--server', ...v]) },
      { weight: 2, arbitrary: fc.array(fc.oneof(clauseIds, junkValue), { maxLength: 3 }).map((v) => ['--only', ...v]) },
      { weight: 2, arbitrary: fc.array(fc.oneof(families, junkValue), { maxLength: 3 }).map((v) => ['--family', ...v]) },
      fc
        .tuple(fc.constantFrom('--jobs', '--seed', '--fsx-runs', '--deadline'), fc.oneof(fc.nat({ max: 100_000 }).map(String), junkValue))
        .map(([o, v]) => [o, v]),
      fc
        .tuple(
          fc.constantFrom(
            '--jobs=',
            '--seed=',
            '--deadline=',
            '--only=',
            '--family=',
            '--server=',
            '--out=',
            '--junit=',
            '--baseline=',
            '--baseline-tolerance=',
          ),
          junkValue,
        )
        .map(([o, v]) => [o + v]),
      outDirs().map((v) => ['--out', v]),
      junitFiles().map((v) => ['--junit', v]),
      fc
        .oneof(
          fc.constantFrom(f.resultsA, f.resultsB, f.resultsV2, f.baselineDir, f.dir, f.passwd, f.fifo, f.binary, '/dev/zero', '/nonexistent/results.json'),
          junkValue,
        )
        .map((v) => ['--baseline', v]),
      fc.oneof(fc.constantFrom('0', '0.15', '1', '1.5', '-0.1', '.2', '15%', 'NaN'), junkValue).map((v) => ['--baseline-tolerance', v]),
      fc
        .constantFrom('--strict', '--shuffle', '--quiet', '--strict=yes', '--no-strict', '--', '-h', '--help', '-x', '-hx', '--jobs', '--server', '-o')
        .map((o) => [o]),
      junkValue.map((v) => [v]),
    );

  test('run: 1,000 argv, each a usage error or a dry run, never a crash', { timeout: 300_000 }, async () => {
    const t0 = Date.now();
    let n = 0;
    const seen = { 0: 0, 1: 0, 2: 0 } as Record<number, number>;
    // Half the cases start from a valid command line, so the later options are reached too.
    const argv = fc
      .tuple(fc.boolean(), fc.array(runPiece(), { maxLength: 6 }))
      .map(([base, pieces]) => ['run', ...(base ? ['--server', PTFS_MANIFEST, '--family', 'NEG'] : []), ...pieces.flat()]);
    await fc.assert(
      fc.asyncProperty(argv, async (a) => {
        n++;
        const r = await call(a);
        seen[r.code] = (seen[r.code] ?? 0) + 1;
        checkAnswer(a, r, false);
        if (r.code === 0)
          expect([`${commandHelp('run')}\n`, 'dry run'], JSON.stringify(a)).toContain(r.out.startsWith('dry run: would certify ') ? 'dry run' : r.out);
      }),
      { numRuns: 1000 },
    );
    console.log(`argv fuzz, run: ${n} cases in ${Date.now() - t0} ms (exit 0: ${seen[0]}, exit 2: ${seen[2]})`);
    expect(n).toBeGreaterThanOrEqual(1000);
    // Both kinds of answer occurred: the fuzzer reached the dry run, not only the first check.
    expect(seen[0]).toBeGreaterThan(20);
    expect(seen[2]).toBeGreaterThan(200);
  });

  test('clauses, doctor, help and junk commands: 1,000 argv', { timeout: 300_000 }, async () => {
    const t0 = Date.now();
    let n = 0;
    const word = fc.oneof(
      fc.constantFrom('--json', '--json=1', '-h', '--help', '--', '-j', 'run', 'compare', 'expect', 'clauses', 'doctor', 'help', '--version'),
      junkValue,
    );
    const argv = fc
      .tuple(fc.oneof(fc.constantFrom('clauses', 'doctor', 'help', '--help', '-h', '--version'), junkValue), fc.array(word, { maxLength: 4 }))
      .map(([c, rest]) => [c, ...rest]);
    await fc.assert(
      fc.asyncProperty(argv, async (a) => {
        n++;
        const r = await call(a);
        checkAnswer(a, r, a[0] === 'clauses');
      }),
      { numRuns: 1000 },
    );
    const none = await call([]);
    checkAnswer([], none, false);
    expect(none.code).toBe(2);
    console.log(`argv fuzz, clauses/doctor/help/junk: ${n} cases in ${Date.now() - t0} ms`);
  });

  test('compare: 1,000 argv over random files, foreign JSON, damaged and foreign-version results', { timeout: 300_000 }, async () => {
    const t0 = Date.now();
    let n = 0;
    let accepted = 0;
    const good = twoRuns();
    /** Every path into a JSON value, so a mutation can hit any field the page reads. */
    const paths = (v: unknown, at: (string | number)[] = []): (string | number)[][] =>
      v && typeof v === 'object' ? [at, ...Object.entries(v).flatMap(([k, x]) => paths(x, [...at, Array.isArray(v) ? Number(k) : k]))] : [at];
    const mutate = (r: object, pick: number, value: unknown, remove: boolean) => {
      const copy = structuredClone(r) as Record<string | number, unknown>;
      const all = paths(copy).filter((p) => p.length > 0);
      const p = all[pick % all.length]!;
      let o = copy;
      for (const k of p.slice(0, -1)) o = o[k] as Record<string | number, unknown>;
      if (remove) delete o[p.at(-1)!];
      else o[p.at(-1)!] = value;
      return copy;
    };
    let k = 0;
    const writeTemp = (content: string | Uint8Array) => {
      const p = path.join(tmp, `in-${k++}.json`);
      writeFileSync(p, content);
      return p;
    };
    // A file given to compare: what it is, and whether compare must accept it.
    const input = fc.oneof(
      // Good results are fresh copies: an argv may make an input the -o target and overwrite it.
      { weight: 8, arbitrary: fc.constantFrom(0, 1).map((i) => ({ file: () => writeTemp(JSON.stringify(good[i])), good: true })) },
      fc.constantFrom('/dev/zero', '/dev/null', '', 'b', '..').map((p) => ({ file: () => p, good: false })),
      fc.constantFrom('resultsV2', 'passwd', 'badManifest', 'text', 'binary').map((key) => ({ file: () => writeTemp(readFileSync(f[key]!)), good: false })),
      fc.constantFrom('dir', 'fifo').map((key) => ({ file: () => f[key]!, good: false })),
      fc.constant({ file: () => path.join(tmp, 'nonexistent.json'), good: false }),
      fc.uint8Array({ maxLength: 64 }).map((b) => ({ file: () => writeTemp(b), good: false })),
      fc.jsonValue({ maxDepth: 3 }).map((v) => ({ file: () => writeTemp(JSON.stringify(v)), good: false })),
      fc.string({ maxLength: 12 }).map((v) => ({ file: () => writeTemp(JSON.stringify({ ...good[0], version: v })), good: null as boolean | null })),
      fc
        .tuple(fc.constantFrom(0, 1), fc.nat(), fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.constant(undefined)), fc.boolean())
        .map(([i, pick, value, remove]) => ({ file: () => writeTemp(JSON.stringify(mutate(good[i]!, pick, value, remove))), good: null as boolean | null })),
    );
    const target = fc.oneof(
      { weight: 3, arbitrary: fc.constantFrom('out.html', 'out.md', 'p/q/c.md') },
      fc.constantFrom(
        'out.html',
        'out.md',
        'pages/x/c.md',
        f.dir,
        f.text,
        f.fifo,
        '/dev/null',
        path.join(f.text, 'c.html'),
        '/proc/c.html',
        '/sys/c.html',
        '',
        '..',
      ),
      junkValue,
    );
    const argv = fc.tuple(
      fc.array(input, { maxLength: 4 }),
      fc.option(target),
      fc.array(fc.constantFrom('-o', '--json', '-x', '--', '-h', '--o', '-o='), { maxLength: 2 }),
      fc.nat(10),
    );
    await fc.assert(
      fc.asyncProperty(argv, async ([inputs, o, extra, where]) => {
        n++;
        const files = inputs.map((i) => i.file());
        const a = ['compare', ...files, ...(o !== null ? ['-o', o] : [])];
        a.splice(1 + (where % a.length), 0, ...extra);
        const r = await call(a);
        checkAnswer(a, r, false);
        // Only results files are ever accepted, and the page is then written.
        if (r.code === 0 && r.out !== `${commandHelp('compare')}\n`) {
          accepted++;
          // (An extra -o turns the next word into the target: that input is then not read.)
          if (!extra.includes('-o'))
            expect(
              inputs.every((i) => i.good !== false),
              JSON.stringify(a),
            ).toBe(true);
          const shown = r.out.replace(/^comparison: /, '').replace(/\n$/, '');
          const written = path.resolve(cwd, shown.startsWith('"') ? JSON.parse(shown) : shown);
          expect(existsSync(written), JSON.stringify(a)).toBe(true);
        }
        // Two good files and a plain output name: accepted.
        if (inputs.length > 0 && inputs.every((i) => i.good === true) && extra.length === 0 && (o === null || o === 'out.md' || o === 'out.html')) {
          expect(r.code, JSON.stringify(a) + r.err).toBe(0);
        }
      }),
      { numRuns: 1000 },
    );
    console.log(`argv fuzz, compare: ${n} cases in ${Date.now() - t0} ms (${accepted} accepted)`);
    expect(accepted).toBeGreaterThan(20);
  });

  test('expect: 500 argv over results and manifests of every kind', { timeout: 300_000 }, async () => {
    const t0 = Date.now();
    let n = 0;
    let accepted = 0;
    const good = twoRuns();
    let k = 0;
    const copy = (from: string | null, content?: string) => {
      const p = path.join(tmp, `x-${k++}.json`);
      writeFileSync(p, content ?? readFileSync(from!));
      return p;
    };
    // A ptfs manifest a case may rewrite: a fresh copy each time.
    const ptfsManifest = () => {
      const m = JSON.parse(readFileSync(PTFS_MANIFEST, 'utf8'));
      const abs = (argv: string[]) => argv.map((w) => (w.startsWith('./') ? path.join(ROOT, 'servers/ptfs', w) : w));
      return copy(null, JSON.stringify({ ...m, command: abs(m.command), version: abs(m.version) }, null, 2));
    };
    const from = fc.oneof(
      { weight: 4, arbitrary: fc.constantFrom(0, 1).map((i) => ({ file: () => copy(null, JSON.stringify(good[i])), good: true })) },
      fc.constantFrom('resultsV2', 'passwd', 'badManifest', 'binary', 'dir', 'fifo').map((key) => ({ file: () => f[key]!, good: false })),
      fc.constantFrom('/dev/zero', '/dev/null', '/nonexistent/r.json', '').map((p) => ({ file: () => p, good: false })),
      junkValue.map((v) => ({ file: () => v, good: false })),
    );
    const write = fc.oneof(
      { weight: 3, arbitrary: fc.constant(() => ptfsManifest()) },
      fc.constantFrom(f.second, f.badManifest, f.passwd, f.dir, f.fifo, '/dev/null', '/proc/self/status', '/nonexistent/m.json').map((p) => () => p),
      junkValue.map((v) => () => v),
    );
    const outFile = fc.oneof(fc.constantFrom('e.json', 'sub/e.json', f.dir, f.fifo, '/dev/null', '/proc/e.json', path.join(f.text, 'e.json')), junkValue);
    const argv = fc.tuple(
      fc.option(from),
      fc.option(write),
      fc.option(outFile),
      fc.array(fc.constantFrom('--from', '--write', '-o', '--json', '-h', '--', 'x'), { maxLength: 2 }),
      fc.nat(10),
    );
    await fc.assert(
      fc.asyncProperty(argv, async ([fr, w, o, extra, where]) => {
        n++;
        const a = ['expect', ...(fr ? ['--from', fr.file()] : []), ...(w ? ['--write', w()] : []), ...(o !== null ? ['-o', o] : [])];
        a.splice(1 + (where % a.length), 0, ...extra);
        const r = await call(a);
        checkAnswer(a, r, true);
        if (r.code === 0 && r.out !== `${commandHelp('expect')}\n`) {
          accepted++;
          if (!extra.length) expect(fr?.good, JSON.stringify(a)).toBe(true);
          // Whatever it printed or wrote: a JSON array of entries, or a line naming the file.
          if (!w && o === null && !extra.length) expect(Array.isArray(JSON.parse(r.out)), JSON.stringify(a)).toBe(true);
        }
      }),
      { numRuns: 500 },
    );
    console.log(`argv fuzz, expect: ${n} cases in ${Date.now() - t0} ms (${accepted} accepted)`);
    expect(accepted).toBeGreaterThan(10);
  });

  test('the checks leave nothing: no write-check files, no run state, no mount', () => {
    const walk = (d: string): string[] =>
      readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(path.join(d, e.name)) : [path.join(d, e.name)]));
    expect(walk(tmp).filter((p) => path.basename(p).startsWith('.fusecert-write-check'))).toEqual([]);
    expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(tmp);
    const ours = readdirSync(os.tmpdir())
      .filter((d) => d.startsWith('fusecert-run-'))
      .filter((d) => {
        try {
          return JSON.parse(readFileSync(path.join(os.tmpdir(), d, 'owner.json'), 'utf8')).pid === process.pid;
        } catch {
          return false;
        }
      });
    expect(ours).toEqual([]);
  });
});

describe('the documented forms and the error lines', () => {
  test('space- and comma-separated lists, repeated and listed servers reach the dry run', async () => {
    for (const argv of [
      ['run', '--server', PTFS_MANIFEST, '--family', 'PLT', 'NEG'],
      ['run', '--server', PTFS_MANIFEST, '--only', 'RW-001', 'RW-002'],
      ['run', '--server', PTFS_MANIFEST, '--only', 'BKG-002,IOM-001', '--strict'],
      ['run', '--family', 'RW,ATT', '--server', PTFS_MANIFEST, '--jobs', '1', '--seed', '7', '--shuffle'],
      ['run', '--server', PTFS_MANIFEST, f.second, '--only', 'RW-001'],
      // examples/github-actions.yml: the JUnit file in the --out directory the run creates
      ['run', '--server', PTFS_MANIFEST, '--server', f.second, '--seed', '12', '--out', 'new-reports', '--junit', 'new-reports/junit.xml'],
      // baseline gating: one server against a file, several against an earlier run's --out
      ['run', '--server', PTFS_MANIFEST, '--family', 'BKG', '--baseline', f.resultsA],
      ['run', '--server', PTFS_MANIFEST, '--baseline', f.resultsA, '--baseline-tolerance', '0.15'],
      // examples/github-actions.yml with the previous run's reports as the baseline
      [
        'run',
        '--server',
        PTFS_MANIFEST,
        '--server',
        f.second,
        '--seed',
        '12',
        '--out',
        'reports',
        '--junit',
        'reports/junit.xml',
        '--baseline',
        f.baselineDir,
        '--baseline-tolerance',
        '0.2',
      ],
    ]) {
      const r = await call(argv);
      expect([r.code, r.err], JSON.stringify(argv)).toEqual([0, '']);
      expect(r.out).toMatch(/^dry run: would certify ptfs/);
    }
    // Two entries of the same server: refused as such, which shows both were read as servers.
    const twice = await call(['run', '--server', PTFS_MANIFEST, '--server', PTFS_MANIFEST]);
    expect(twice.err).toMatch(/^fusecert: error: two --server arguments name the same server \(ptfs, ptfs\)/);
    const words = await call(['run', '--server', PTFS_MANIFEST, '--family', 'PLT', 'NOPE']);
    expect(words.err).toBe('fusecert: error: --family NOPE: unknown family (known: PLT, NEG, BKG, IOM, RW, SPL, MAP, ATT, FSX, LIF, PRF)\n');
  });

  test('usage errors name the input and what was expected', async () => {
    const cases: [string[], RegExp][] = [
      [['run', '--server', PTFS_MANIFEST, '--jobs', '0'], /^--jobs 0: expected a whole number from 1 to 256$/],
      [['run', '--server', PTFS_MANIFEST, '--jobs', '--strict'], /^--jobs needs a value \(N\), got the option --strict/],
      [['run', '--server', PTFS_MANIFEST, '--out', f.text], /^--out .*file\.txt: is a file; expected a directory/],
      [
        ['run', '--server', PTFS_MANIFEST, '--junit', '/nonexistent/dir/j.xml'],
        /^--junit \/nonexistent\/dir\/j\.xml: directory \/nonexistent\/dir does not exist; expected a file in an existing directory or under --out$/,
      ],
      [['run', '--server', PTFS_MANIFEST, '--out', 'r1', '--junit', 'r2/j.xml'], /^--junit .*\/r2\/j\.xml: directory .*\/r2 does not exist/],
      [['run', '--server', PTFS_MANIFEST, '--junit', '/proc/j.xml'], /^--junit \/proc\/j\.xml: cannot write in \/proc/],
      [['run', '--server', f.fifo], /^--server .*fifo: is not a regular file/],
      [['run', '--server', PTFS_MANIFEST, 'stray'], /stray: \(top level\): file not found/],
      [['clauses', 'stray'], /^unexpected argument stray: clauses takes only options/],
      [['doctor', '--json'], /^unknown option --json for doctor/],
      [['compare'], /^compare needs RESULTS\.json/],
      [['compare', f.resultsV2], /v2\.json: written by fusecert 2\.0\.0; this is fusecert 0\.1\.0/],
      [['compare', f.resultsA, '-o', f.dir], /^-o .*dir: is a directory; expected a file name/],
      [['frob'], /^unknown command frob; expected one of run, compare, expect, explain, clauses, doctor/],
      [
        ['run', '--server', PTFS_MANIFEST, '--baseline', f.resultsB],
        /^--baseline .*b\.json: a run of server bindfs, not ptfs; a baseline is an earlier run of the same server/,
      ],
      [['run', '--server', PTFS_MANIFEST, '--baseline', f.resultsV2], /^--baseline .*v2\.json: written by fusecert 2\.0\.0; this is fusecert 0\.1\.0/],
      [
        ['run', '--server', PTFS_MANIFEST, f.second, '--baseline', f.resultsA],
        /^--baseline .*a\.json: a file, but the run certifies 2 servers; give the --out directory of an earlier run/,
      ],
      [['run', '--server', PTFS_MANIFEST, '--baseline', f.dir], /^--baseline .*dir: holds no results\.json for ptfs/],
      [
        ['run', '--server', PTFS_MANIFEST, '--baseline', f.resultsA, '--baseline-tolerance', '15%'],
        /^--baseline-tolerance 15%: expected a fraction from 0 to 1/,
      ],
      [['run', '--server', PTFS_MANIFEST, '--baseline-tolerance', '0.1'], /^--baseline-tolerance needs --baseline PATH/],
      [['expect', '--from', f.resultsV2], /v2\.json: written by fusecert 2\.0\.0/],
    ];
    for (const [argv, re] of cases) {
      const r = await call(argv);
      expect(r.code, JSON.stringify(argv)).toBe(2);
      expect(r.err.replace(/^fusecert: error: /, '').trim(), JSON.stringify(argv)).toMatch(re);
    }
  });

  test('--help per command lists exactly the options the parser accepts', async () => {
    for (const [cmd, spec] of Object.entries(COMMANDS)) {
      for (const h of [
        [cmd, '--help'],
        [cmd, '-h'],
        ['help', cmd],
      ]) {
        const r = await call(h);
        expect(r.code).toBe(0);
        const shown = [...r.out.matchAll(/^ {2}(-{1,2}[a-z-]+)/gm)].map((m) => m[1]);
        expect(shown.sort(), cmd).toEqual(
          [...Object.entries(spec.options).map(([n, o]) => ('short' in o && o.short === n ? `-${n}` : `--${n}`)), '--help'].sort(),
        );
      }
    }
  });

  test('an internal error is one line that says where to report it; the stack only with FUSECERT_DEBUG=1', () => {
    let err = '';
    const io = { err: (t: string) => void (err += t + '\n'), env: {} };
    expect(reportError(new TypeError("Cannot read properties of undefined (reading 'x')"), io)).toBe(2);
    expect(err).toBe(
      "fusecert: internal error: TypeError: Cannot read properties of undefined (reading 'x') (please report this with the command line at the fusecert issue tracker; FUSECERT_DEBUG=1 prints the stack)\n",
    );
    err = '';
    reportError(new TypeError('boom'), { ...io, env: { FUSECERT_DEBUG: '1' } });
    expect(lines(err)[0]).toMatch(/^fusecert: internal error: TypeError: boom/);
    expect(lines(err)[2]).toMatch(/^\s+at .*argv\.fuzz\.test\.ts/);
  });

  test("the real executable: the issue's compare and a documented run form answer in one line", { timeout: 60_000 }, async () => {
    const cmp = await execa('node', [CLI, 'compare', '/etc/passwd'], { cwd: ROOT, reject: false });
    expect([cmp.exitCode, cmp.stdout, cmp.stderr]).toEqual([
      2,
      '',
      'fusecert: error: /etc/passwd: not JSON; expected a results.json written by `fusecert run`',
    ]);
    // --family PLT NEG parses, so the run gets as far as the manifest, which names a missing server.
    const run = await execa('node', [CLI, 'run', '--server', f.missingExe, '--family', 'PLT', 'NEG'], { cwd: ROOT, reject: false });
    expect(run.exitCode).toBe(2);
    expect(run.stderr).toMatch(/^fusecert: error: .*missing-exe\.json: command\[0\]: executable \/nonexistent\/server not found[^\n]*$/);
  });
});
