import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { countOf, findMarker, hexRet, parseTrace, parseTraceLine, summariseRequests } from './parse.ts';

const TRACES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../fixtures/traces');
const fixture = (name: string) => fs.readFileSync(path.join(TRACES, name), 'utf8');
/** the connection a fixture was recorded on (its header says so) */
const connOf = (text: string) => Number(/# connection (\d+)/.exec(text)![1]);

describe('parseTraceLine', () => {
  test('fuse_request_send with record-tgid', () => {
    const e = parseTraceLine(
      '             cat-4083    (   4083) [000] ...2.   989.231667: fuse_request_send: connection 40 req 10 opcode 15 (FUSE_READ) len 80 ',
    );
    expect(e).toEqual({
      task: 'cat',
      tid: 4083,
      tgid: 4083,
      cpu: 0,
      ts: 989_231_667,
      kind: 'request_send',
      connection: 40,
      unique: 10,
      opcode: 15,
      opname: 'FUSE_READ',
      len: 80,
    });
  });

  test('fuse_request_end without tgid column, negative error', () => {
    const e = parseTraceLine('          bindfs-4077  [001] .....   989.231811: fuse_request_end: connection 40 req 12 len 16 error -5');
    expect(e).toMatchObject({ kind: 'request_end', tid: 4077, cpu: 1, connection: 40, unique: 12, len: 16, error: -5 });
    expect(e).not.toHaveProperty('tgid');
  });

  test('task names with dashes and spaces', () => {
    const e = parseTraceLine('  kworker/u8:2-fuse-55    (     55) [001] .....  10.000001: fuse_request_end: connection 3 req 2 len 16 error 0');
    expect(e).toMatchObject({ task: 'kworker/u8:2-fuse', tid: 55, tgid: 55 });
    const g = parseTraceLine('    my prog-777    (    700) [000] .....  10.000002: tracing_mark_write: hello world');
    expect(g).toMatchObject({ task: 'my prog', tid: 777, kind: 'marker', text: 'hello world' });
  });

  test('send without the symbolic name falls back to the opcode table', () => {
    const e = parseTraceLine('  x-1 (1) [000] ..... 1.000000: fuse_request_send: connection 9 req 4 opcode 35 len 10');
    expect(e).toMatchObject({ opname: 'FUSE_CREATE', opcode: 35 });
  });

  test('sys_ioctl enter in both hex styles, exit with positive and negative returns', () => {
    expect(parseTraceLine('  ptfs-7626 (  7623) [001] ..... 1239.567626: sys_ioctl(fd: 4, cmd: 0x4010e501, arg: 0x7f41831fcca0)')).toMatchObject({
      kind: 'ioctl_enter',
      tid: 7626,
      tgid: 7623,
      fd: 4,
      cmd: 0x4010e501,
      arg: 0x7f41831fcca0n,
    });
    expect(parseTraceLine('  srv-10 [000] ..... 1.000001: sys_ioctl(fd: 1a, cmd: 4004e502, arg: 7ffc0000)')).toMatchObject({
      kind: 'ioctl_enter',
      fd: 26,
      cmd: 0x4004e502,
      arg: 0x7ffc0000n,
    });
    expect(parseTraceLine('  ptfs-7626 (  7623) [001] ..... 1239.567634: sys_ioctl -> 0x1')).toMatchObject({ kind: 'ioctl_exit', ret: 1 });
    expect(parseTraceLine('  ptfs-7624 (  7623) [000] ..... 1239.568073: sys_ioctl -> 0xfffffffffffffffe')).toMatchObject({ ret: -2 });
    expect(hexRet('ffffffffffffffff')).toBe(-1);
    expect(hexRet('7fffffff')).toBe(0x7fffffff);
  });

  test('task forks and exits (comm may hold spaces)', () => {
    expect(parseTraceLine('  ptfs-4990 (  4990) [000] ..... 1001.000000: sched_process_fork: comm=ptfs pid=4990 child_comm=ptfs child_pid=5001')).toMatchObject(
      {
        kind: 'fork',
        tid: 4990,
        parent: 4990,
        child: 5001,
      },
    );
    expect(parseTraceLine('  a b-7 (  7) [000] ..... 1.000000: sched_process_fork: comm=a b pid=7 child_comm=a b child_pid=8')).toMatchObject({
      parent: 7,
      child: 8,
    });
    expect(parseTraceLine('  ptfs-5001 (  4990) [001] ..... 1002.000000: sched_process_exit: comm=ptfs pid=5001 prio=120 group_dead=false')).toMatchObject({
      kind: 'task_exit',
      pid: 5001,
    });
    expect(parseTraceLine('  x-9 (  9) [001] ..... 1.000000: sched_process_exit: comm=x pid=9 prio=120')).toMatchObject({ kind: 'task_exit', pid: 9 });
  });

  test('headers, blanks and unknown events', () => {
    expect(parseTraceLine('# tracer: nop')).toBeNull();
    expect(parseTraceLine('')).toBeNull();
    expect(parseTraceLine('garbage')).toBeNull();
    expect(parseTraceLine('  a-1 (1) [000] ..... 5.5: sched_switch: prev_comm=a')).toMatchObject({ kind: 'other', event: 'sched_switch', ts: 5_500_000 });
  });
});

describe('recorded fixtures', () => {
  test('bindfs read: every line parses, FUSE_READ counted, FLUSH ENOSYS paired by unique', () => {
    const text = fixture('bindfs-read.txt');
    const lines = text.split('\n').filter((l) => l && !l.startsWith('#'));
    const evs = parseTrace(text);
    expect(evs.length).toBe(lines.length);
    expect(evs.some((e) => e.kind === 'other')).toBe(false);
    const s = summariseRequests(evs, connOf(text), 'window 1 begin', 'window 1 end');
    // two 1 MiB files read with 128 KiB requests: 8 reads each
    expect(countOf(s, 'FUSE_READ')).toBe(16);
    expect(countOf(s, 'FUSE_OPEN')).toBe(2);
    expect(s.total).toBe(Object.values(s.counts).reduce((a, b) => a + b, 0));
    // bindfs does not implement flush: the kernel gets ENOSYS once and stops sending FLUSH
    expect(s.errors).toEqual([{ opcode: 'FUSE_FLUSH', unique: expect.any(Number), error: -38, code: 'ENOSYS' }]);
    expect(countOf(s, 'FUSE_FLUSH')).toBe(1);
    expect(s.unanswered).toEqual([]);
    expect(s.replyBytes.FUSE_READ).toBe(16 * (128 * 1024 + 16));
    // another connection sees nothing
    expect(summariseRequests(evs, connOf(text) + 1000).total).toBe(0);
  });

  test('ptfs passthrough: no FUSE_READ, one CREATE', () => {
    const text = fixture('ptfs-passthrough.txt');
    const s = summariseRequests(parseTrace(text), connOf(text), 'window 1 begin', 'window 1 end');
    expect(countOf(s, 'FUSE_READ')).toBe(0);
    expect(countOf(s, 'FUSE_OPEN')).toBe(5);
    expect(countOf(s, 'FUSE_CREATE')).toBe(1);
  });

  test('ptfs without passthrough: reads reach the server', () => {
    const text = fixture('ptfs-no-passthrough.txt');
    const s = summariseRequests(parseTrace(text), connOf(text), 'window 1 begin', 'window 1 end');
    expect(countOf(s, 'FUSE_READ')).toBe(8);
  });

  test('markers: a missing marker throws, ranges are exclusive', () => {
    const evs = parseTrace(fixture('bindfs-read.txt'));
    expect(() => summariseRequests(evs, 1, 'no such marker')).toThrow(/not found/);
    expect(findMarker(evs, 'window 1 end')).toBeGreaterThan(findMarker(evs, 'window 1 begin'));
  });
});

describe('summariseRequests', () => {
  const T = (s: string) =>
    s
      .split('\n')
      .map((l) => l.trim())
      .join('\n');
  const trace = T(`
    t-1 (1) [000] ..... 1.000001: tracing_mark_write: A
    t-1 (1) [000] ..... 1.000002: fuse_request_send: connection 7 req 2 opcode 14 (FUSE_OPEN) len 48
    s-9 (9) [001] ..... 1.000003: fuse_request_end: connection 7 req 2 len 16 error -5
    t-1 (1) [000] ..... 1.000004: fuse_request_send: connection 7 req 4 opcode 2 (FUSE_FORGET) len 48
    t-1 (1) [000] ..... 1.000005: fuse_request_send: connection 7 req 6 opcode 15 (FUSE_READ) len 80
    t-1 (1) [000] ..... 1.000006: tracing_mark_write: B
    s-9 (9) [001] ..... 1.000007: fuse_request_end: connection 7 req 6 len 4112 error 0`);

  test('errors are paired by unique and named; unanswered excludes FORGET', () => {
    const s = summariseRequests(parseTrace(trace), 7, 'A', 'B');
    expect(s.counts).toEqual({ FUSE_OPEN: 1, FUSE_FORGET: 1, FUSE_READ: 1 });
    expect(s.errors).toEqual([{ opcode: 'FUSE_OPEN', unique: 2, error: -5, code: 'EIO' }]);
    expect(s.unanswered).toEqual([6]);
    const all = summariseRequests(parseTrace(trace), 7);
    expect(all.unanswered).toEqual([]);
    expect(all.replyBytes).toEqual({ FUSE_OPEN: 16, FUSE_READ: 4112 });
  });
});
