// The pieces of `fusecert kernel build` that need no build: the configuration file, what a SPEC
// names, a tree's version, and the cache listing (real files in a cache directory of the test's).
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { configLines, findKernel, kernelCache, listKernels, makefileVersion, parseKernelSpec, passthroughCapable, KernelError } from './build.ts';
import { parseKernels } from '../cli/kernels.ts';

describe('kernel build', () => {
  const dirs: string[] = [];
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  test('uml.config: every line an option, FUSE and passthrough required, syscall tracepoints optional', () => {
    const lines = configLines();
    const byName = new Map(lines.map((l) => [l.option, l]));
    for (const o of ['CONFIG_FUSE_FS', 'CONFIG_FUSE_PASSTHROUGH', 'CONFIG_HOSTFS', 'CONFIG_DEVTMPFS', 'CONFIG_MAGIC_SYSRQ'])
      expect(byName.get(o)?.optional, o).toBe(false);
    expect(byName.get('CONFIG_FTRACE_SYSCALLS')?.optional).toBe(true);
    expect(() => configLines('CONFIG_X=y\nnot an option\n')).toThrow(KernelError);
  });

  test('a SPEC is a Debian series or a source tree; anything else is refused with what it should be', () => {
    expect(parseKernelSpec('6.12')).toEqual({ kind: 'debian', series: '6.12' });
    const tree = mkdtempSync(path.join(os.tmpdir(), 'fusecert-tree-'));
    dirs.push(tree);
    mkdirSync(path.join(tree, 'arch/um'), { recursive: true });
    writeFileSync(path.join(tree, 'Makefile'), 'VERSION = 6\nPATCHLEVEL = 18\nSUBLEVEL = 2\nEXTRAVERSION =\n');
    expect(parseKernelSpec(tree)).toEqual({ kind: 'tree', dir: tree });
    expect(() => parseKernelSpec('/nonexistent/linux')).toThrow(/neither a kernel series .* nor a Linux source tree/);
    expect(makefileVersion('VERSION = 6\nPATCHLEVEL = 18\nSUBLEVEL = 2\nEXTRAVERSION = -rc1\n')).toBe('6.18.2-rc1');
    expect(makefileVersion('VERSION = 6\nPATCHLEVEL = 18\nSUBLEVEL = 2\nEXTRAVERSION =\nNAME = Baby Opossum Posse\n')).toBe('6.18.2'); // an empty EXTRAVERSION is not the next line
    expect(() => makefileVersion('no version here')).toThrow(KernelError);
  });

  test('passthrough starts at 6.9', () => {
    expect(passthroughCapable('6.8.12')).toBe(false);
    expect(passthroughCapable('6.9.0')).toBe(true);
    expect(passthroughCapable('6.12.118')).toBe(true);
    expect(passthroughCapable('7.0.0')).toBe(true);
  });

  test('the cache: where it is, what it lists (newest release first), what a version finds', () => {
    const cache = mkdtempSync(path.join(os.tmpdir(), 'fusecert-kcache-'));
    dirs.push(cache);
    const env = { FUSECERT_KERNEL_CACHE: cache };
    expect(kernelCache(env)).toBe(cache);
    expect(kernelCache({ HOME: '/home/u' })).toBe('/home/u/.cache/fusecert/kernels');
    expect(kernelCache({ HOME: '/home/u', XDG_CACHE_HOME: '/c' })).toBe('/c/fusecert/kernels');
    for (const v of ['6.12.118', '6.18.2']) {
      const d = path.join(cache, `${v}-abc`);
      mkdirSync(d);
      writeFileSync(path.join(d, 'linux'), '');
      writeFileSync(
        path.join(d, 'meta.json'),
        JSON.stringify({
          key: `${v}-abc`,
          version: v,
          source: 's',
          absent: [],
          builtAt: '2026-12-07T00:00:00Z',
          buildSeconds: 1,
          compiler: 'gcc',
          linux: path.join(d, 'linux'),
          bytes: 0,
        }),
      );
    }
    mkdirSync(path.join(cache, '.build-6.19.0-x')); // a build in progress is not a kernel
    mkdirSync(path.join(cache, '6.10.0-broken')); // nor an entry without meta.json
    expect(listKernels(env).map((k) => k.version)).toEqual(['6.18.2', '6.12.118']);
    expect(findKernel('6.12', env)?.version).toBe('6.12.118');
    expect(findKernel('6.18.2', env)?.version).toBe('6.18.2');
    expect(findKernel('6.1', env)).toBeNull(); // 6.1 is not 6.12's prefix
  });

  test('--kernel values', () => {
    expect(parseKernels([])).toEqual([{ kind: 'host', label: 'host' }]);
    expect(parseKernels(['host', 'uml:6.12', 'uml:6.18.2']).map((k) => k.label)).toEqual(['host', 'uml-6.12', 'uml-6.18.2']);
    expect(() => parseKernels(['qemu:6.12'])).toThrow(/expected host or uml:VERSION/);
    expect(() => parseKernels(['uml:6.12', 'uml:6.12'])).toThrow(/given twice/);
  });
});
