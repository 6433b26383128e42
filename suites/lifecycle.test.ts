import { open, stat, readFile } from 'node:fs/promises';
import { clause, useMount, check, errnoFrom } from '../src/harness/index.ts';
import { alive, fuseMountAt } from '../src/mount/index.ts';

// Each lifecycle clause ends its server, so each has a mount of its own.
const clean = useMount();
clause(
  'LIF-001',
  async (t) => {
    const fh = await open(clean.path('data/f4-4096.bin'), 'r');
    await fh.read(Buffer.alloc(4096), 0, 4096, 0);
    await fh.close();
    const server = clean.server!;
    const pids = server.pids;
    const mp = clean.mountpoint;
    const report = await clean.stop();
    t.note('stop', report);
    check(report, 'the server could not be stopped');
    check(report.escalations.length === 0, `the server did not stop by its unmount method (${server.spec.manifest.unmount}); needed: ${report.escalations.join(', ')}`);
    check(report.exitCode === 0 || report.exitCode === null, `the server exited with code ${report.exitCode}${report.signal ? ` (signal ${report.signal})` : ''} after a clean unmount`);
    check(!fuseMountAt(mp), `the mount at ${mp} is still there`);
    const left = pids.filter((p) => alive(p));
    check(left.length === 0, `server process(es) ${left.join(', ')} still running after unmount`);
  },
  { mount: clean },
);

const killed = useMount();
clause(
  'LIF-002',
  async (t) => {
    const server = killed.server!;
    const file = killed.path('data/f4-4096.bin');
    for (const p of server.pids) process.kill(p, 'SIGKILL');
    const until = Date.now() + 5000;
    while (server.pids.some((p) => alive(p)) && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    const errs = { stat: await errnoFrom(() => stat(file)), read: await errnoFrom(() => readFile(file)) };
    t.note('errno after kill', errs);
    check(errs.stat === 'ENOTCONN' && errs.read === 'ENOTCONN', `after SIGKILL of the server, stat gave ${errs.stat} and read gave ${errs.read}; expected ENOTCONN`);
    killed.broken = true;
    const mp = killed.mountpoint;
    const report = await killed.stop();
    t.note('removal', report?.escalations);
    check(!fuseMountAt(mp), `the dead server's mount at ${mp} could not be removed`);
  },
  { mount: killed },
);
