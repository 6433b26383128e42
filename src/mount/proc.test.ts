import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { alive, processStart } from './registry.ts';
import { hasExited, liveThreads, pidsWhere, procStat } from './proc.ts';

describe('/proc parsing', () => {
  it('reads its own stat: parent, group, start time', () => {
    const st = procStat(process.pid)!;
    expect(st.ppid).toBe(process.ppid);
    expect(st.pgrp).toBeGreaterThan(0);
    expect(st.start).toMatch(/^\d+$/);
    expect(processStart(process.pid)).toBe(st.start);
    expect(liveThreads(process.pid)).toBeGreaterThanOrEqual(1);
  });

  it('a pid that does not exist has no stat and is not alive', () => {
    expect(procStat(2 ** 22 + 7)).toBeNull();
    expect(alive(2 ** 22 + 7)).toBe(false);
    expect(alive(process.pid, '1')).toBe(false); // same pid, another start time: another process
  });

  it('finds children, and tells a zombie from a running process (comm with spaces and parentheses)', async () => {
    // sh starts a short child, then becomes `sleep 5`, which never reaps it: a zombie whose parent lives
    const sh = spawn('sh', ['-c', 'cp /bin/sleep "$0/s (x) y" && "$0/s (x) y" 0.05 & exec sleep 5', '/tmp'], { stdio: 'ignore' });
    try {
      let zombie: number | undefined;
      for (let i = 0; i < 100 && zombie === undefined; i++) {
        await new Promise((r) => setTimeout(r, 20));
        zombie = pidsWhere((st) => st.ppid === sh.pid && st.state === 'Z')[0];
      }
      expect(zombie).toBeDefined();
      expect(pidsWhere((st) => st.ppid === process.pid)).toContain(sh.pid);
      expect(hasExited(procStat(zombie!))).toBe(true);
      expect(alive(zombie!)).toBe(false);
      expect(alive(sh.pid!)).toBe(true);
      expect(liveThreads(zombie!)).toBe(0);
    } finally {
      sh.kill('SIGKILL');
    }
  });
});
