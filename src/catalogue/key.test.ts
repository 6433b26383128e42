import { describe, expect, test } from 'vitest';
import fc from 'fast-check';
import { formatKey, parseKey, covers } from './key.ts';

describe('clause keys', () => {
  test('the four forms', () => {
    expect(parseKey('RW-004')).toEqual({ id: 'RW-004' });
    expect(parseKey('IOM-001[O_RDONLY+O_DIRECT]')).toEqual({ id: 'IOM-001', param: 'O_RDONLY+O_DIRECT' });
    expect(parseKey('ATT-006@passthrough-direct')).toEqual({ id: 'ATT-006', variant: 'passthrough-direct' });
    expect(parseKey('PLT-004[a@b]@no-passthrough')).toEqual({ id: 'PLT-004', param: 'a@b', variant: 'no-passthrough' });
  });
  test('parseKey(formatKey(k)) is k for every key a clause can make', () => {
    const id = fc.stringMatching(/^[A-Z]{2,3}-\d{3}$/);
    const param = fc.option(
      fc.string({ minLength: 0, maxLength: 12 }).filter((s) => !s.includes(']')),
      { nil: undefined },
    );
    const variant = fc.option(fc.stringMatching(/^[a-z0-9-]{1,12}$/), { nil: undefined });
    fc.assert(
      fc.property(id, param, variant, (i, p, v) => {
        const k = { id: i, ...(p !== undefined ? { param: p } : {}), ...(v !== undefined ? { variant: v } : {}) };
        expect(parseKey(formatKey(k))).toEqual(k);
      }),
    );
  });
  test('an expect entry without a parameter covers every parameter, a variant only itself', () => {
    expect(covers(parseKey('IOM-001'), parseKey('IOM-001[O_RDONLY+O_WRONLY]'))).toBe(true);
    expect(covers(parseKey('IOM-001[x]'), parseKey('IOM-001[y]'))).toBe(false);
    expect(covers(parseKey('ATT-006'), parseKey('ATT-006@no-passthrough'))).toBe(false);
    expect(covers(parseKey('ATT-006@no-passthrough'), parseKey('ATT-006@no-passthrough'))).toBe(true);
  });
});
