// The enable_uring holder scheme on a stand-in parameter file (no root, no kernel): holders come and
// go, the first records the value and the last restores it, dead holders and dead lock makers are
// swept, and the leftover accounting names what a dead run left.
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { holdUring, releaseUring, sweepUringHolds, readHoldState, uringLeftovers, uringParam, UringParamError, type UringEnv } from './uring-param.ts';

let tmp: string;
let living: Set<string>;
let env: UringEnv;
const h = (pid: number) => ({ pid, start: `s${pid}` });
const param = () => readFileSync(env.param, 'utf8');

beforeEach(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'uring-param-'));
  living = new Set(['1:s1', '2:s2', '3:s3', `${process.pid}:${'x'}`]);
  env = { param: path.join(tmp, 'enable_uring'), dir: path.join(tmp, 'run'), alive: (pid, start) => living.has(`${pid}:${start}`) };
  writeFileSync(env.param, 'N\n');
});
afterEach(() => rmSync(tmp, { recursive: true, force: true }));

describe('enable_uring holders', () => {
  test('the first holder records the value and sets Y; the last restores it', () => {
    expect(holdUring(h(1), env)).toMatchObject({ original: 'N', changed: true });
    expect(param()).toBe('Y');
    expect(holdUring(h(2), env)).toMatchObject({ original: 'N', changed: false });
    expect(readHoldState(env)!.holders).toEqual([h(1), h(2)]);
    expect(releaseUring(h(1), env)).toEqual([]);
    expect(param()).toBe('Y'); // pid 2 still holds it
    expect(releaseUring(h(2), env)).toEqual([`restored ${env.param} to N`]);
    expect(param()).toBe('N');
    expect(readHoldState(env)).toBeNull();
    expect(existsSync(path.join(env.dir, 'enable_uring.lock'))).toBe(false);
  });

  test('a value that was Y already stays Y after the last holder', () => {
    writeFileSync(env.param, 'Y\n');
    expect(holdUring(h(1), env)).toMatchObject({ original: 'Y', changed: false });
    expect(releaseUring(h(1), env)).toEqual([]);
    expect(uringParam(env)).toBe('Y');
  });

  test('holding twice is one hold; releasing a stranger changes nothing', () => {
    holdUring(h(1), env);
    holdUring(h(1), env);
    expect(readHoldState(env)!.holders).toEqual([h(1)]);
    releaseUring(h(3), env);
    expect(param()).toBe('Y');
  });

  test('a dead holder (pid reused: other start time) is dropped by the next hold, release or sweep', () => {
    holdUring(h(1), env);
    holdUring(h(2), env);
    living.delete('1:s1');
    living.add('1:other'); // the pid now names another process
    expect(sweepUringHolds(env)).toEqual(['dropped the enable_uring hold of dead run pid 1']);
    expect(param()).toBe('Y');
    living.delete('2:s2');
    expect(sweepUringHolds(env)).toEqual(['dropped the enable_uring hold of dead run pid 2', `restored ${env.param} to N`]);
    expect(param()).toBe('N');
    expect(sweepUringHolds(env)).toEqual([]);
  });

  test("a new holder after every holder died keeps the first holder's original value", () => {
    holdUring(h(1), env);
    living.delete('1:s1');
    // the dead holder's hold is settled first (restoring N), then the new one takes it afresh
    expect(holdUring(h(2), env)).toMatchObject({ original: 'N', changed: true });
    expect(param()).toBe('Y');
    releaseUring(h(2), env);
    expect(param()).toBe('N');
  });

  test('a lock left by a dead process is broken; a live one is waited for', () => {
    const lock = path.join(env.dir, 'enable_uring.lock');
    holdUring(h(1), env);
    writeFileSync(lock, '99 s99'); // its maker was killed between lock and unlock
    expect(releaseUring(h(1), env)).toEqual([`restored ${env.param} to N`]);
    expect(existsSync(lock)).toBe(false);
    holdUring(h(1), env);
    writeFileSync(lock, '3 s3'); // alive and never letting go
    const t0 = Date.now();
    expect(() => releaseUring(h(1), env)).toThrow(/held by pid 3 for more than 5 s/);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(5000);
  }, 10_000);

  test('a kernel without the parameter is an error naming it', () => {
    rmSync(env.param);
    expect(() => holdUring(h(1), env)).toThrow(UringParamError);
    expect(() => holdUring(h(1), env)).toThrow(/enable_uring is missing: this kernel has no FUSE over io_uring/);
    expect(readHoldState(env)).toBeNull();
  });

  test('the leftover accounting names the hold of a dead run and a value left changed', () => {
    holdUring(h(1), env);
    expect(uringLeftovers(1, env)).toEqual(['kernel parameter enable_uring held for run pid 1 (now Y, was N)']);
    living.delete('1:s1');
    expect(uringLeftovers(1, env)).toEqual([
      'kernel parameter enable_uring held for run pid 1 (now Y, was N)',
      'kernel parameter enable_uring left Y (was N) with no living holder',
    ]);
    expect(uringLeftovers(2, env)).toEqual(['kernel parameter enable_uring left Y (was N) with no living holder']);
    sweepUringHolds(env);
    expect(uringLeftovers(1, env)).toEqual([]);
  });
});
