import { describe, expect, test } from 'vitest';
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import path from 'node:path';
import { parseManifest, ManifestError, substitute, loadServer, resolveServer, needsIoUring } from './index.ts';

const good = {
  name: 'x',
  command: ['./x', '{source}', '{mountpoint}'],
  claims: { passthrough: true },
};
const parse = (o: unknown) => parseManifest(JSON.stringify(o), '/m/manifest.json');
const errorOf = (o: unknown) => {
  try {
    parse(o);
  } catch (e) {
    return e as ManifestError;
  }
  throw new Error('no error');
};

describe('manifest schema', () => {
  test('defaults are filled in', () => {
    const m = parse(good);
    expect(m.mountTimeoutMs).toBe(10000);
    expect(m.unmount).toBe('signal');
    expect(m.claims.mirror).toBe(true);
    expect(m.expect).toEqual([]);
  });
  test('claims.passthroughIo: rw by default, ro or wo, anything else refused naming the field', () => {
    expect(parse(good).claims.passthroughIo).toBe('rw');
    expect(parse({ ...good, claims: { passthrough: true, passthroughIo: 'wo' } }).claims.passthroughIo).toBe('wo');
    const e = errorOf({ ...good, claims: { passthrough: true, passthroughIo: 'reads' } });
    expect(e.field).toBe('claims.passthroughIo');
  });
  test("a variant's claims override only the claims it names", () => {
    const m = parse({ ...good, claims: { passthrough: true, xattrs: true, mirror: false }, variants: { np: { claims: { passthrough: false } } } });
    expect(m.variants.np!.claims).toEqual({ passthrough: false });
    // command[0] /bin/sh exists everywhere: only the claims matter here
    const spec = resolveServer({ ...m, command: ['/bin/sh', '{mountpoint}'] }, '/m/manifest.json', 'np');
    expect([spec.claims.passthrough, spec.claims.xattrs, spec.claims.mirror]).toEqual([false, true, false]);
    expect(errorOf({ ...good, variants: { np: { claims: { passthrough: 'no' } } } }).field).toBe('variants.np.claims.passthrough');
  });
  test('claims.transport: dev by default, io_uring by claim or variant, anything else refused naming the field', () => {
    expect(parse(good).claims.transport).toBe('dev');
    expect(errorOf({ ...good, claims: { passthrough: true, transport: 'uring' } }).field).toBe('claims.transport');
    expect(errorOf({ ...good, variants: { u: { claims: { transport: 'ring' } } } }).field).toBe('variants.u.claims.transport');
    const m = parse({
      ...good,
      command: ['/bin/sh', '{mountpoint}'],
      variants: { u: { args: ['-o', 'io_uring'], claims: { transport: 'io_uring' } }, np: { claims: { passthrough: false } } },
    });
    const spec = (v: string | null) => resolveServer(m, '/m/manifest.json', v);
    expect([spec('u').claims.transport, spec('np').claims.transport, spec(null).claims.transport]).toEqual(['io_uring', 'dev', 'dev']);
    // the whole manifest needs io_uring (its variants run too); a variant alone only if it claims it
    expect([needsIoUring(spec(null)), needsIoUring(spec('u')), needsIoUring(spec('np'))]).toEqual([true, true, false]);
    const ring = parse({
      ...good,
      command: ['/bin/sh', '{mountpoint}'],
      claims: { passthrough: true, transport: 'io_uring' },
      variants: { np: { claims: { passthrough: false } } },
    });
    expect(resolveServer(ring, '/m/manifest.json', 'np').claims.transport).toBe('io_uring'); // inherited
    expect(needsIoUring(resolveServer(parse({ ...good, command: ['/bin/sh', '{mountpoint}'] }), '/m/manifest.json', null))).toBe(false);
  });
  test('claims.fallback, no longer a claim, is refused with the reason', () => {
    const e = errorOf({ ...good, claims: { passthrough: true, fallback: true } });
    expect(e.message).toMatch(/^\/m\/manifest.json: claims: unknown field "fallback": it is no longer a claim/);
    expect(e.message).toMatch(/BKG-006, BKG-007/);
  });
  test('a typo in a field names the file, the field and what was expected', () => {
    const e = errorOf({ ...good, mountTimoutMs: 5 });
    expect(e).toBeInstanceOf(ManifestError);
    expect(e.message).toBe('/m/manifest.json: (top level): unknown field "mountTimoutMs" (check the spelling; see README "Writing a manifest")');
  });
  test('a wrong type names the nested field', () => {
    const e = errorOf({ ...good, claims: { passthrough: 'yes' } });
    expect(e.field).toBe('claims.passthrough');
    expect(e.message).toContain('expected boolean');
  });
  test('command must contain {mountpoint}', () => {
    expect(errorOf({ ...good, command: ['./x'] }).field).toBe('command');
  });
  test('expectations need a known clause id, a reason and a date', () => {
    expect(errorOf({ ...good, expect: [{ clause: 'XYZ-1', status: 'fail', reason: 'long enough reason', expires: '2027-01-01' }] }).field).toBe(
      'expect[0].clause',
    );
    expect(errorOf({ ...good, expect: [{ clause: 'RW-004', status: 'fail', reason: 'short', expires: '2027-01-01' }] }).field).toBe('expect[0].reason');
    expect(errorOf({ ...good, expect: [{ clause: 'RW-004', status: 'fail', reason: 'a real reason', expires: 'soon' }] }).field).toBe('expect[0].expires');
    const bad = errorOf({ ...good, expect: [{ clause: 'RW-004', status: 'fail', reason: 'a real reason', expires: '2027-01-01', match: 'EIO (' }] });
    expect([bad.field, bad.expected]).toEqual(['expect[0].match', 'a regular expression (JavaScript syntax) the failure reason must contain']);
    expect(
      parse({ ...good, expect: [{ clause: 'RW-004', status: 'fail', reason: 'a real reason', expires: '2027-01-01', match: 'EIO \\(' }] }).expect[0]!.match,
    ).toBe('EIO \\(');
  });
  test('invalid JSON is reported as such', () => {
    expect(() => parseManifest('{', '/m.json')).toThrow(/not valid JSON/);
  });
  test('placeholders are substituted without a shell', () => {
    expect(substitute(['a', '{source}', '-o', 'x={scratch}/w', '{mountpoint}'], '/s', '/m', '/t')).toEqual(['a', '/s', '-o', 'x=/t/w', '/m']);
  });
  test('every manifest under servers/ is valid', () => {
    const dir = path.resolve(import.meta.dirname, '../../servers');
    const found = readdirSync(dir).filter((d) => existsSync(path.join(dir, d, 'manifest.json')));
    expect(found.length).toBeGreaterThanOrEqual(3);
    for (const d of found) {
      const f = path.join(dir, d, 'manifest.json');
      expect(() => parseManifest(readFileSync(f, 'utf8'), f)).not.toThrow();
    }
  });
});

describe('expect entries of a variant certified alone', () => {
  const ptfs = path.resolve(import.meta.dirname, '../../servers/ptfs/manifest.json');
  test.skipIf(!existsSync(path.resolve(import.meta.dirname, '../../servers/ptfs/ptfs')))(
    'apply ID@V to the run of manifest.json@V, and nothing of the server as it is',
    () => {
      const base = loadServer(ptfs);
      expect(base.expect.map((e) => e.clause)).toEqual(['ATT-006', 'ATT-006@passthrough-direct']);
      expect(loadServer(`${ptfs}@passthrough-direct`).expect.map((e) => e.clause)).toEqual(['ATT-006']);
      expect(loadServer(`${ptfs}@no-passthrough`).expect).toEqual([]);
    },
  );
});
