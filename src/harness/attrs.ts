// Attributes read several ways at once, so an ATT clause can say which view was stale and by how much.
import { stat, type FileHandle } from 'node:fs/promises';
import { statxAsync, AT } from '../sys/index.ts';
import { fail } from './expect.ts';

export interface AttrView {
  size: number;
  blocks: number;
  mode: number;
  nlink: number;
  mtimeNs: bigint;
  ctimeNs: bigint;
}

export type Views = Record<string, AttrView>;

export async function fstatView(fh: FileHandle): Promise<AttrView> {
  const s = await fh.stat({ bigint: true });
  return { size: Number(s.size), blocks: Number(s.blocks), mode: Number(s.mode), nlink: Number(s.nlink), mtimeNs: s.mtimeNs, ctimeNs: s.ctimeNs };
}

export async function statView(p: string): Promise<AttrView> {
  const s = await stat(p, { bigint: true });
  return { size: Number(s.size), blocks: Number(s.blocks), mode: Number(s.mode), nlink: Number(s.nlink), mtimeNs: s.mtimeNs, ctimeNs: s.ctimeNs };
}

export async function statxView(p: string): Promise<AttrView> {
  const s = await statxAsync(AT.AT_FDCWD, p, AT.AT_STATX_SYNC_AS_STAT);
  const ns = (t: { sec: bigint; nsec: number }) => t.sec * 1_000_000_000n + BigInt(t.nsec);
  return { size: Number(s.size), blocks: Number(s.blocks), mode: s.mode, nlink: s.nlink, mtimeNs: ns(s.mtime), ctimeNs: ns(s.ctime) };
}

/**
 * The views ATT clauses compare, read one after another in this order: fstat on the writing fd,
 * fstat on another fd, stat by path, statx by path. Views whose handle is not given are left out.
 */
export async function attrViews(p: string, writer?: FileHandle, other?: FileHandle): Promise<Views> {
  const v: Views = {};
  if (writer) v['fstat on the writing fd'] = await fstatView(writer);
  if (other) v['fstat on another fd'] = await fstatView(other);
  v['stat by path'] = await statView(p);
  v['statx by path'] = await statxView(p);
  return v;
}

/** Fail naming every view whose size is not `expected`, and by how much it is off. */
export function expectSize(views: Views, expected: number, after: string): void {
  const bad = Object.entries(views).filter(([, v]) => v.size !== expected);
  if (bad.length === 0) return;
  const good = Object.entries(views)
    .filter(([, v]) => v.size === expected)
    .map(([k]) => k);
  fail(
    `${bad.map(([k, v]) => `${k} showed size ${v.size} (${v.size < expected ? 'stale by' : 'over by'} ${Math.abs(expected - v.size)} bytes)`).join('; ')} right after ${after}; expected ${expected}` +
      (good.length ? `; ${good.join(' and ')} showed ${expected}` : ''),
  );
}

export const msOf = (ns: bigint) => Number(ns / 1_000_000n);

/** Evidence-friendly copy (bigints become strings). */
export function plainViews(views: Views): Record<string, Record<string, number | string>> {
  const out: Record<string, Record<string, number | string>> = {};
  for (const [k, v] of Object.entries(views)) out[k] = { ...v, mtimeNs: v.mtimeNs.toString(), ctimeNs: v.ctimeNs.toString(), mode: v.mode.toString(8) };
  return out;
}
