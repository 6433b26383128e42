import { describe, expect, test } from 'vitest';
import { ThreadFollower } from './follow.ts';
import { parseTrace, type TraceEvent } from './parse.ts';

const T = (s: string) =>
  s
    .split('\n')
    .map((l) => l.trim())
    .join('\n');

/** The events a follower keeps, as "task:kind" */
function kept(f: ThreadFollower, text: string): string[] {
  return parseTrace(T(text))
    .filter((e) => f.keep(e))
    .map((e: TraceEvent) => `${e.tid}:${e.kind}`);
}

describe('ThreadFollower', () => {
  test('threads count from their follow marker on; other tasks never', () => {
    const f = new ThreadFollower();
    const m = f.nextMarker();
    f.add(m, [10, 11]);
    expect(
      kept(
        f,
        `
        s-10 (10) [000] ..... 1.000001: sys_ioctl(fd: 4, cmd: 0x4010e501, arg: 0x1)
        s-10 (10) [000] ..... 1.000002: sys_ioctl -> 0x1
        t-1 (1) [001] ..... 1.000003: tracing_mark_write: ${m}
        s-10 (10) [000] ..... 1.000004: sys_ioctl(fd: 4, cmd: 0x4010e501, arg: 0x1)
        s-10 (10) [000] ..... 1.000005: sys_ioctl -> 0x2
        o-20 (20) [001] ..... 1.000006: sys_ioctl(fd: 4, cmd: 0x4010e501, arg: 0x1)
        o-20 (20) [001] ..... 1.000007: sys_ioctl -> 0x3
        s-11 (10) [001] ..... 1.000008: sys_ioctl -> 0x0
        t-1 (1) [001] ..... 1.000009: tracing_mark_write: fusecert window 1 begin x`,
      ),
    ).toEqual(['10:ioctl_enter', '10:ioctl_exit', '11:ioctl_exit', '1:marker']);
    expect(f.threads().sort()).toEqual([10, 11]);
  });

  test('children of followed tasks are followed until they exit; a reused id is not', () => {
    const f = new ThreadFollower();
    const m = f.nextMarker();
    f.add(m, [10]);
    expect(
      kept(
        f,
        `
        t-1 (1) [001] ..... 1.000001: tracing_mark_write: ${m}
        s-10 (10) [000] ..... 1.000002: sched_process_fork: comm=s pid=10 child_comm=s child_pid=12
        o-20 (20) [000] ..... 1.000003: sched_process_fork: comm=o pid=20 child_comm=o child_pid=21
        s-12 (10) [001] ..... 1.000004: sys_ioctl -> 0x0
        o-21 (20) [001] ..... 1.000005: sys_ioctl -> 0x0
        s-12 (10) [001] ..... 1.000006: sched_process_exit: comm=s pid=12 prio=120 group_dead=false
        x-12 (12) [001] ..... 1.000007: sys_ioctl -> 0x0`,
      ),
    ).toEqual(['12:ioctl_exit']);
    expect(f.threads()).toEqual([10]);
  });

  test('a marker of another follower or one never added keeps nobody', () => {
    const f = new ThreadFollower();
    expect(kept(f, 's-10 (10) [000] ..... 1.000001: tracing_mark_write: fusecert follow 7\ns-10 (10) [000] ..... 1.000002: sys_ioctl -> 0x0')).toEqual([]);
  });
});
