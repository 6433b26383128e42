import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { BackingLedger } from './ledger.ts';
import { parseTrace } from './parse.ts';

const TRACES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../fixtures/traces');
const load = (name: string) => {
  const text = fs.readFileSync(path.join(TRACES, name), 'utf8');
  return new BackingLedger(parseTrace(text), Number(/# connection (\d+)/.exec(text)![1]));
};

describe('ledger on recorded ptfs runs', () => {
  test('clean passthrough: 6 opens (5 OPEN + 1 CREATE), 6 closes, none live', () => {
    const l = load('ptfs-passthrough.txt');
    expect(l.opens.filter((o) => o.ok)).toHaveLength(6);
    expect(l.closes.filter((c) => c.ok)).toHaveLength(6);
    expect(l.liveCount()).toBe(0);
    expect(l.neverClosed()).toBe(0);
    expect(l.failedOpens()).toEqual([]);
    expect(l.failedCloses()).toEqual([]);
    expect(l.unfinished()).toEqual([]);
    expect(l.ids()).toEqual([1, 2, 3, 4, 5, 6]);
    expect(l.maxLive()).toBe(1);
    const pr = l.perRequest();
    expect(pr.opens.every((a) => a.request !== undefined)).toBe(true);
    expect(pr.opens.map((a) => a.request!.opcode).sort()).toEqual(['FUSE_CREATE', ...Array(5).fill('FUSE_OPEN')]);
    expect(new Set(pr.opens.map((a) => a.request!.unique)).size).toBe(6);
    expect(pr.closes.every((a) => a.request?.opcode === 'FUSE_RELEASE')).toBe(true);
    expect(l.openRequests()).toBe(6);
    expect(l.summary()).toBe('backing ids: 6 opened, 6 closed, 0 live (max 1)');
  });

  test('leak-backing-id: every id stays live', () => {
    const l = load('ptfs-leak-backing-id.txt');
    expect(l.opens.filter((o) => o.ok)).toHaveLength(5);
    expect(l.closes).toHaveLength(0);
    expect(l.liveCount()).toBe(5);
    expect(l.neverClosed()).toBe(5);
    expect(l.maxLive()).toBe(5);
  });

  test('double-close: every second close fails with ENOENT, live count still exact', () => {
    const l = load('ptfs-double-close.txt');
    expect(l.opens.filter((o) => o.ok)).toHaveLength(5);
    expect(l.closes).toHaveLength(10);
    const failed = l.failedCloses();
    expect(failed).toHaveLength(5);
    expect(failed.every((c) => c.code === 'ENOENT' && c.result === -2 && c.meaning === 'double close or unknown id')).toBe(true);
    expect(l.liveCount()).toBe(0);
    expect(l.summary()).toMatch(/5 failed closes \(5 ENOENT\)/);
  });

  test('bindfs (no passthrough): empty ledger', () => {
    const l = load('bindfs-read.txt');
    expect(l.opens).toEqual([]);
    expect(l.liveCount()).toBe(0);
  });
});

// Hand-made lines in the kernel's exact format, for cases the recorded runs do not contain.
const T = (s: string) =>
  s
    .trim()
    .split('\n')
    .map((l) => l.trim())
    .join('\n');

describe('ledger arithmetic on hand-made traces', () => {
  test('failed opens with errno names, EINVAL close, liveAt over time', () => {
    const l = new BackingLedger(
      parseTrace(
        T(`
      srv-11 (10) [000] ..... 100.000001: sys_ioctl(fd: 4, cmd: 0x4010e501, arg: 0x7ffc0010)
      srv-11 (10) [000] ..... 100.000002: sys_ioctl -> 0xffffffffffffffff
      srv-12 (10) [001] ..... 100.000003: sys_ioctl(fd: 4, cmd: 0x4010e501, arg: 0x7ffc0020)
      srv-11 (10) [000] ..... 100.000004: sys_ioctl(fd: 4, cmd: 0x4010e501, arg: 0x7ffc0010)
      srv-12 (10) [001] ..... 100.000005: sys_ioctl -> 0x7
      srv-11 (10) [000] ..... 100.000006: sys_ioctl -> 0xffffffffffffffeb
      srv-11 (10) [000] ..... 100.000007: sys_ioctl(fd: 4, cmd: 0x4010e501, arg: 0x7ffc0010)
      srv-11 (10) [000] ..... 100.000008: sys_ioctl -> 0x8
      srv-12 (10) [001] ..... 100.000009: sys_ioctl(fd: 4, cmd: 0x4004e502, arg: 0x7ffc0030)
      srv-12 (10) [001] ..... 100.000010: sys_ioctl -> 0xffffffffffffffea
      srv-12 (10) [001] ..... 100.000011: sys_ioctl(fd: 4, cmd: 0x5401, arg: 0x7ffc0040)
      srv-12 (10) [001] ..... 100.000012: sys_ioctl -> 0x0
      srv-12 (10) [001] ..... 100.000013: sys_ioctl -> 0x0
      srv-11 (10) [000] ..... 100.000014: sys_ioctl(fd: 4, cmd: 0x4004e502, arg: 0x7ffc0050)
      srv-11 (10) [000] ..... 100.000015: sys_ioctl -> 0x0
      srv-12 (10) [001] ..... 100.000016: sys_ioctl(fd: 4, cmd: 0x4004e502, arg: 0x7ffc0060)
    `),
      ),
    );
    expect(l.failedOpens().map((o) => o.code)).toEqual(['EPERM', 'EISDIR']);
    expect(l.opens.filter((o) => o.ok).map((o) => o.id)).toEqual([7, 8]);
    expect(l.failedCloses().map((c) => [c.code, c.meaning])).toEqual([['EINVAL', 'id <= 0']]);
    // the TCGETS ioctl (0x5401) and the stray exit after it are not backing calls
    expect(l.closes).toHaveLength(3);
    expect(l.unfinished()).toHaveLength(1);
    expect(l.liveAt(100_000_004)).toBe(0);
    expect(l.liveAt(100_000_005)).toBe(1);
    expect(l.liveAt(100_000_008)).toBe(2);
    expect(l.liveAt(100_000_015)).toBe(1);
    expect(l.liveCount()).toBe(1);
    expect(l.maxLive()).toBe(2);
    expect(l.summary()).toBe(
      'backing ids: 2 opened, 1 closed, 1 live (max 2); 2 failed opens (1 EPERM, 1 EISDIR); 1 failed closes (1 EINVAL); 1 calls without a return in the trace',
    );
  });

  test('perRequest: replies written by another thread fall back to interval, overlap is ambiguous', () => {
    const l = new BackingLedger(
      parseTrace(
        T(`
      app-1 (1) [000] ..... 5.000001: fuse_request_send: connection 3 req 2 opcode 14 (FUSE_OPEN) len 48
      srv-20 (20) [001] ..... 5.000002: sys_ioctl(fd: 4, cmd: 0x4010e501, arg: 0x1000)
      srv-20 (20) [001] ..... 5.000003: sys_ioctl -> 0x1
      srv-21 (20) [001] ..... 5.000004: fuse_request_end: connection 3 req 2 len 32 error 0
      app-1 (1) [000] ..... 6.000001: fuse_request_send: connection 3 req 4 opcode 35 (FUSE_CREATE) len 60
      app-2 (2) [000] ..... 6.000002: fuse_request_send: connection 3 req 6 opcode 14 (FUSE_OPEN) len 48
      srv-20 (20) [001] ..... 6.000003: sys_ioctl(fd: 4, cmd: 0x4010e501, arg: 0x1000)
      srv-20 (20) [001] ..... 6.000004: sys_ioctl -> 0x2
      srv-22 (20) [001] ..... 6.000005: fuse_request_end: connection 3 req 4 len 160 error 0
      srv-23 (20) [001] ..... 6.000006: fuse_request_end: connection 3 req 6 len 32 error 0
      app-1 (1) [000] ..... 7.000001: fuse_request_send: connection 9 req 8 opcode 14 (FUSE_OPEN) len 48
      srv-20 (20) [001] ..... 7.000002: sys_ioctl(fd: 4, cmd: 0x4010e501, arg: 0x1000)
      srv-20 (20) [001] ..... 7.000003: sys_ioctl -> 0x3
    `),
      ),
      3,
    );
    const pr = l.perRequest().opens;
    expect(pr[0]!.request).toEqual({ opcode: 'FUSE_OPEN', unique: 2, how: 'interval' });
    expect(pr[1]!.request).toBeUndefined();
    expect(pr[1]!.candidates).toEqual([4, 6]);
    // connection 9 is not ours: no candidate
    expect(pr[2]).toEqual({ call: l.opens[2] });
  });
});
