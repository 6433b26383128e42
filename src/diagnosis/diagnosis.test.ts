// The diagnosis on recorded reply evidence (fixtures/traces/replies-ptfs-*.txt: fusecert-replies
// output beside a real ptfs, clean and with three defects, two open pairs of one file each), and
// the pieces it stands on: the line parser, the struct decoders, the path cleaning.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { parseReplyLine, Timeline } from '../evidence/index.ts';
import { decodeInitOut, decodeOpenOut, fopenNames, FOPEN, INIT_BIT } from '../evidence/wire.ts';
import { cleanPaths, userSaw } from '../harness/diagnose.ts';
import { causeText, diagnose } from './index.ts';

const FIX = path.resolve(import.meta.dirname, '../../fixtures/traces');

function load(name: string) {
  const text = readFileSync(path.join(FIX, `replies-ptfs-${name}.txt`), 'utf8');
  const head = /connection (\d+), server pid (\d+), opens from t0=(\d+) us/.exec(text.split('\n')[0]!)!;
  const events = text
    .split('\n')
    .map(parseReplyLine)
    .filter((e) => e !== null);
  const tl = new Timeline(events, Number(head[1]), [Number(head[2])]);
  return { tl, since: Number(head[3]), findings: diagnose(tl, { sinceTs: Number(head[3]), claimsPassthrough: true }) };
}

describe('diagnosis on recorded reply evidence', () => {
  test('clean ptfs: passthrough granted at INIT, every OPEN reply in passthrough with an id the server opened, every id closed, no finding', () => {
    const { tl, findings } = load('clean');
    const init = tl.init!.init!;
    expect((init.flags64 >> BigInt(INIT_BIT.PASSTHROUGH!)) & 1n).toBe(1n);
    expect(init.maxStackDepth).toBe(1);
    const opens = tl.requests.filter((r) => r.opname === 'FUSE_OPEN');
    expect(opens.length).toBe(4);
    for (const o of opens) {
      expect(o.openOut!.openFlags & FOPEN.PASSTHROUGH).toBeTruthy();
      expect(tl.ids.get(o.openOut!.backingId)?.opened).toBeDefined();
      expect(o.refusedBy).toBeUndefined();
    }
    expect(tl.liveIds()).toEqual([]);
    expect(findings).toEqual([]);
  });

  test('keep-cache-with-passthrough: the refused OPEN reply, its flags and D5', () => {
    const { tl, findings } = load('keep-cache-with-passthrough');
    expect(tl.requests.filter((r) => r.opname === 'FUSE_OPEN').every((r) => r.refusedBy)).toBe(true);
    expect(causeText(findings)).toMatch(/^the OPEN reply \(unique \d+\) carried PASSTHROUGH\|KEEP_CACHE \(0x82\) with backing id \d+; only DIRECT_IO/);
    expect(findings[0]!.rule).toContain('D5');
  });

  test('backing-id-per-open: the second open named another id while the inode was open on the first (E3)', () => {
    const { findings } = load('backing-id-per-open');
    const f = findings.find((x) => x.rule.includes('E3'));
    expect(f?.text).toMatch(/with backing id (\d+) while nodeid \d+ was open in passthrough on backing id (?!\1)\d+/);
  });

  test('double-close: the failed BACKING_CLOSE names its id and when that id was closed before', () => {
    const { findings } = load('double-close');
    expect(findings.length).toBeGreaterThan(0);
    expect(findings.every((f) => /BACKING_CLOSE of id (\d+) \(thread \d+\) failed with ENOENT: id \1 had been closed already/.test(f.text))).toBe(true);
  });
});

describe('reply lines and FUSE structs', () => {
  test('lines that are not events, or are cut short, parse to null', () => {
    for (const l of ['', 'ready', 'flushed 3 lost=0', 'reply 1 2 3', 'ioctl 1 2 3 4 5 deadbeef 0 0 0 0 0', 'end 1 2']) expect(parseReplyLine(l)).toBeNull();
  });
  test("an end line's last field is the transport; the timeline counts the requests after INIT by it", () => {
    const end = (ts: number, unique: number, op: number, err: number, tr: string) => `end ${ts}000 11 10 47 ${unique} ${op} 1 ${err} 0 - 0 - 0 0 ${tr}`;
    expect(parseReplyLine(end(5, 2, 26, 0, '1'))).toMatchObject({ kind: 'kend', transport: 'dev' });
    expect(parseReplyLine(end(5, 4, 3, 0, '2'))).toMatchObject({ kind: 'kend', transport: 'ring' });
    expect(parseReplyLine(end(5, 4, 3, 0, '3'))).toMatchObject({ transport: 'dev' }); // a kernel without the ring
    expect(parseReplyLine(end(5, 4, 3, 0, '0'))!).not.toHaveProperty('transport');
    expect(parseReplyLine('end 5000 11 10 47 4 3 1 0 0 - 0 - 0 0')!).not.toHaveProperty('transport'); // an older loader
    // a GETATTR that ended before INIT's end (another mount's, say) is not counted
    const lines = [
      end(0, 1, 3, 0, '1'),
      end(1, 2, 26, 0, '1'),
      end(2, 4, 1, 0, '2'),
      end(3, 6, 3, 0, '2'),
      end(4, 8, 14, 0, '1'),
      end(5, 10, 18, -107, '2'),
      end(6, 12, 3, 0, '0'),
    ];
    const c = new Timeline(
      lines.map(parseReplyLine).filter((e) => e !== null),
      47,
    ).transports();
    expect({ ...c, firstDev: c.firstDev.map((r) => r.unique), firstRing: c.firstRing.map((r) => r.unique) }).toEqual({
      init: 'dev', // INIT's reply carried no fuse_init_out here: its end still bounds the count
      ring: 2,
      dev: 1,
      unknown: 1,
      unanswered: 1,
      firstDev: [8],
      firstRing: [4, 6],
    });
  });
  test('a BACKING_CLOSE line carries the id it named; a BACKING_OPEN its fd', () => {
    const c = parseReplyLine('ioctl 2000 3000 11 10 4 4004e502 0 7 0 0 0')!;
    expect(c).toMatchObject({ kind: 'backing', cmd: 'close', id: 7, ret: 0, enterTs: 2, exitTs: 3, fault: false });
    const o = parseReplyLine('ioctl 1000 1500 11 10 4 4010e501 7 14 0 0 0')!;
    expect(o).toMatchObject({ kind: 'backing', cmd: 'open', fd: 14, ret: 7 });
  });
  test('fuse_open_out and fuse_init_out decode from their ABI offsets; short captures decode to undefined', () => {
    const o = Buffer.alloc(16);
    o.writeBigUInt64LE(99n, 0);
    o.writeUInt32LE(0x82, 8);
    o.writeInt32LE(3, 12);
    expect(decodeOpenOut(o)).toEqual({ fh: 99n, openFlags: 0x82, backingId: 3 });
    expect(decodeOpenOut(o.subarray(0, 8))).toBeUndefined();
    expect(fopenNames(0x82)).toBe('PASSTHROUGH|KEEP_CACHE');
    expect(fopenNames(0x100)).toBe('0x100');
    const i = Buffer.alloc(64);
    i.writeUInt32LE(7, 0);
    i.writeUInt32LE(40, 4);
    i.writeUInt32LE((1 << 30) | (1 << 16), 12); // INIT_EXT | WRITEBACK_CACHE
    i.writeUInt32LE(1 << 5, 32); // flags2: PASSTHROUGH
    i.writeUInt32LE(2, 36);
    const d = decodeInitOut(i)!;
    expect(d.initExt).toBe(true);
    expect(d.maxStackDepth).toBe(2);
    expect(d.flags64).toBe((1n << 30n) | (1n << 16n) | (1n << 37n));
    // without INIT_EXT the kernel never reads flags2
    i.writeUInt32LE(0, 12);
    expect(decodeInitOut(i)!.flags64).toBe(0n);
  });
});

describe('what the user saw: paths inside the mount, no raw Node errors', () => {
  test('temporary paths of a run become paths in the mount or backing: paths', () => {
    expect(cleanPaths("EIO: i/o error, open '/tmp/fusecert-run-1/ws-2/mnt/data/f1'")).toBe("EIO: i/o error, open '/data/f1'");
    expect(cleanPaths('x /tmp/a/mnt y /tmp/a/store/src/z.bin')).toBe('x / y backing:/z.bin');
    expect(cleanPaths('at /m/p/q', { mountpoint: '/m/p', source: '/s' })).toBe('at /q');
  });
  test('a Node errno error reads as syscall(path) = ERRNO', () => {
    const e = Object.assign(new Error("EIO: i/o error, open '/tmp/r/mnt/data/f1'"), { code: 'EIO', syscall: 'open', path: '/tmp/r/mnt/data/f1' });
    expect(userSaw(e, {})).toBe('open(/data/f1) = EIO (i/o error)');
  });
});
