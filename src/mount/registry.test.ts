// The registry sweep runs in signal handlers and in the guardian of a killed run: one entry cut
// short by a writer killed mid-write must not stop it from releasing the others.
import { describe, expect, test } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { register, sweep, stateDir, useRegistry } from './registry.ts';

describe('registry', () => {
  test('an empty entry is skipped and named; the other entries are released', () => {
    const base = mkdtempSync(path.join(os.tmpdir(), 'fusecert-registry-'));
    try {
      const res = path.join(base, 'resources');
      const victim = path.join(base, 'work');
      mkdirSync(victim);
      writeFileSync(path.join(victim, 'x'), 'x');
      const saved = stateDir();
      useRegistry(res);
      try {
        register({ kind: 'tmpdir', path: victim });
      } finally {
        useRegistry(saved);
      }
      expect(readdirSync(res).filter((f) => f.endsWith('.new'))).toEqual([]); // renamed into place
      writeFileSync(path.join(res, 'mount-1-1.json'), ''); // what a killed writer leaves
      const log = sweep(res);
      expect(log).toContain('skipped an unreadable registry entry mount-1-1.json');
      expect(log).toContain(`removed ${victim}`);
      expect(existsSync(victim)).toBe(false);
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  });
});
