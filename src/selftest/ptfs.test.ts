// The reference server itself (issue 2): bad input gives one line and exit 2 with nothing
// mounted, and a short run without passthrough ends with no leak under valgrind.
import { describe, expect, test } from 'vitest';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { readFile, writeFile, mkdir, rename, readdir, symlink, readlink, link, truncate, stat, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { missing, PTFS, ROOT } from './util.ts';

const mountedAt = (mp: string) =>
  readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[4] === mp);

function scratch(): { dir: string; src: string; mnt: string; done: () => void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'fusecert-test-ptfs-'));
  const src = path.join(dir, 'src');
  const mnt = path.join(dir, 'mnt');
  mkdirSync(src);
  mkdirSync(mnt);
  return { dir, src, mnt, done: () => rmSync(dir, { recursive: true, force: true }) };
}

const why = missing('root', 'fuse', 'ptfs');

describe.skipIf(why)(`ptfs${why ? ` (skipped: ${why})` : ''}`, () => {
  test('bad input: one line naming the cause, exit 2, nothing mounted', async () => {
    const s = scratch();
    try {
      const full = path.join(s.dir, 'full');
      mkdirSync(full);
      writeFileSync(path.join(full, 'x'), '');
      const cases: [string[], RegExp][] = [
        [['--source', s.src], /--mountpoint is required/],
        [['--source', path.join(s.dir, 'nope'), '--mountpoint', s.mnt], /source .*nope: No such file or directory/],
        [['--source', s.src, '--mountpoint', path.join(s.dir, 'nope')], /mountpoint .*nope: No such file or directory/],
        [['--source', s.src, '--mountpoint', full], /mountpoint .*full is not empty/],
        [['--source', s.src, '--mountpoint', s.mnt, '--defect', 'no-such'], /unknown defect .*valid: .*leak-backing-id/],
        [['--source', s.src, '--mountpoint', s.mnt, '--io-policy', 'sometimes'], /unknown --io-policy 'sometimes'/],
        [['--source', s.src, '--mountpoint', s.mnt, '--bogus'], /unknown option '--bogus'/],
      ];
      for (const [args, re] of cases) {
        const r = await execa(PTFS, args, { reject: false, timeout: 10_000 });
        const lines = r.stderr.trim().split('\n');
        expect(r.exitCode, args.join(' ')).toBe(2);
        expect(lines.length, `${args.join(' ')}: ${r.stderr}`).toBe(1);
        expect(lines[0], args.join(' ')).toMatch(re);
        expect(mountedAt(s.mnt) || mountedAt(full)).toBe(false);
      }
    } finally {
      s.done();
    }
  });

  const whyVg = why ?? missing('valgrind');
  test.skipIf(whyVg)(`a short run without passthrough has no leak under valgrind${whyVg ? ` (skipped: ${whyVg})` : ''}`, async () => {
    const s = scratch();
    const vg = execa(
      'valgrind',
      [
        '--leak-check=full',
        '--show-leak-kinds=definite,indirect',
        '--errors-for-leak-kinds=definite,indirect',
        '--error-exitcode=99',
        PTFS,
        '--source',
        s.src,
        '--mountpoint',
        s.mnt,
        '--no-passthrough',
      ],
      { reject: false, timeout: 90_000 },
    );
    try {
      await writeFile(path.join(s.src, 'a'), 'hello\n');
      const until = Date.now() + 30_000;
      while (!mountedAt(s.mnt) && Date.now() < until && vg.exitCode === null) await new Promise((r) => setTimeout(r, 100));
      expect(mountedAt(s.mnt), 'ptfs under valgrind did not mount within 30 s').toBe(true);
      // one of each kind of request: lookup, create, write, read, mkdir, rename, readdir, symlink,
      // link, setattr, unlink, rmdir, statfs
      const p = (x: string) => path.join(s.mnt, x);
      expect(await readFile(p('a'), 'utf8')).toBe('hello\n');
      await writeFile(p('b'), 'data');
      await mkdir(p('d'));
      await rename(p('b'), p('d/c'));
      expect(await readFile(p('d/c'), 'utf8')).toBe('data');
      expect((await readdir(p(''))).sort()).toEqual(['a', 'd']);
      await symlink('a', p('l'));
      expect(await readlink(p('l'))).toBe('a');
      await link(p('a'), p('h'));
      await truncate(p('a'), 100);
      expect((await stat(p('h'))).size).toBe(100);
      await execa('df', [s.mnt]);
      await rm(p('d'), { recursive: true });
      await rm(p('l'));
      await rm(p('h'));
      vg.kill('SIGTERM');
      const r = await vg;
      const summary = r.stderr
        .split('\n')
        .filter((l) => /ERROR SUMMARY|definitely lost|indirectly lost|All heap blocks/.test(l))
        .join('\n');
      expect(r.exitCode, r.stderr.slice(-3000)).toBe(0);
      expect(summary).toMatch(/ERROR SUMMARY: 0 errors/);
      expect(mountedAt(s.mnt)).toBe(false);
    } finally {
      if (vg.exitCode === null) {
        vg.kill('SIGKILL');
        await vg;
      }
      if (mountedAt(s.mnt)) await execa('umount', ['-l', s.mnt], { reject: false });
      s.done();
    }
  });
  // the standalone reproducer of mergerfs's passthrough.io=ro bug (servers/mergerfs/README.md) can
  // fail and pass: an unguarded policy (read-only opens cached beside passthrough ones) fails it,
  // the clean server and the guarded partial policy pass it
  test('fixtures/repro/mixed-open-modes.py: EIO on --io-policy by-access, ok on the default and on passthrough-reads', async () => {
    const script = path.join(ROOT, 'fixtures/repro/mixed-open-modes.py');
    for (const [policy, pair, code] of [
      ['by-access', ['rw', 'r'], 1],
      ['passthrough', ['r', 'rw'], 0],
      ['passthrough-reads', ['r', 'rw'], 0],
      ['passthrough-reads', ['w', 'r'], 0],
    ] as const) {
      const s = scratch();
      const srv = execa(PTFS, ['--source', s.src, '--mountpoint', s.mnt, '--io-policy', policy], { reject: false });
      try {
        const until = Date.now() + 10_000;
        while (!mountedAt(s.mnt) && Date.now() < until && srv.exitCode === null) await new Promise((r) => setTimeout(r, 50));
        expect(mountedAt(s.mnt), `ptfs --io-policy ${policy} did not mount`).toBe(true);
        const r = await execa('python3', [script, s.mnt, ...pair], { reject: false });
        expect(r.exitCode, `${policy} ${pair.join(' ')}: ${r.stdout}${r.stderr}`).toBe(code);
        if (code) expect(r.stdout).toMatch(/open #2 \(r\) while 1 other open\(s\) are held: Input\/output error/);
      } finally {
        srv.kill('SIGTERM');
        await srv;
        if (mountedAt(s.mnt)) await execa('umount', ['-l', s.mnt], { reject: false });
        s.done();
      }
    }
  });
});
