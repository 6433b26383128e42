// Where does the evidence overhead go? Times open/close cycles on a ptfs mount under several
// tracing set-ups, in rounds of one storm per set-up; the order rotates from round to round and
// every other round runs it backwards, each storm follows a short unmeasured warm-up, and each
// set-up's figure is the median, over the rounds, of its time divided by the bare storm's time of
// the same round (with a distribution-free ~95 % interval), as bench/evidence-overhead.ts does:
//   bare         no tracing
//   sys-floor    sys_enter_ioctl enabled in an instance that records nothing (pid filter: pid 0):
//                only the cost of a syscall tracepoint being on (every syscall of every task
//                takes the traced entry path)
//   pid-only     an instance with set_event_pid (pid 0) and event-fork, whose only enabled event
//                never matches: the cost of the pid filter's scheduler hooks alone
//   sys-nopid    sys_enter/exit_ioctl enabled with filters that never match and no pid filter
//   fuse         fuse_request_send/end of the connection recorded, never read
//   ioctl        sys_enter/exit_ioctl of the server's threads recorded, never read
//   both         fuse + ioctl recorded, never read (the kernel's floor for the evidence)
//   both-nopid   both, but the ioctl instance without set_event_pid: backing cmds and every
//                ioctl exit of the machine recorded, plus sched_process_fork/exit (the session's
//                set-up: the server's threads are picked out when the trace is read)
//   both+text    both, trace_pipe read by a worker thread every 200 ms (the reader before it waited for a fill)
//   both+raw     both, per_cpu/cpuN/trace_pipe_raw (binary pages) read the same way
//   session      a real EvidenceSession window around the workload
//   npx tsx bench/evidence-breakdown.ts [cycles] [rounds] [set-up,...]
// Needs root and tracefs. Removes its instances, mount and server.
import fs from 'node:fs';
import path from 'node:path';
import { EvidenceSession, tracefsStatus, threadsOf, BACKING_OPEN_CMD, BACKING_CLOSE_CMD } from '../src/evidence/index.ts';
import { PipeReader } from '../src/evidence/pipe-reader.ts';
import { havePtfs, startMount } from '../src/evidence/testing.ts';

const cycles = Number(process.argv[2] ?? 3000);
const rounds = Number(process.argv[3] ?? 21);
const ALL = ['bare', 'pid-only', 'sys-nopid', 'sys-floor', 'fuse', 'ioctl', 'both', 'both-nopid', 'both+text', 'both+raw', 'session'] as const;
type SetUp = (typeof ALL)[number];
const chosen = (process.argv[4]?.split(',') ?? ALL) as SetUp[];
const st = await tracefsStatus();
if (!st.available || !havePtfs()) {
  console.error(`evidence-breakdown: ${st.reason ?? 'servers/ptfs/ptfs is not built'}`);
  process.exit(2);
}
const m = await startMount('ptfs', [], (src) => fs.writeFileSync(path.join(src, 'f'), 'x'.repeat(4096)));
const file = path.join(m.mnt, 'f');

/** CPU time (µs) of this process (all its threads) and of the server */
function cpuNow(): number {
  const own = process.cpuUsage();
  const f = fs.readFileSync(`/proc/${m.pid}/stat`, 'latin1').split(') ')[1]!.split(' ');
  const tick = 1e6 / 100; // USER_HZ
  return own.user + own.system + (Number(f[11]) + Number(f[12])) * tick;
}
let lastCpu = 0;
async function storm(n = cycles): Promise<number> {
  const c0 = cpuNow();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    const fh = await fs.promises.open(file, 'r');
    await fh.close();
  }
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  lastCpu = cpuNow() - c0;
  return ms;
}

const made: string[] = [];
function instance(tag: string): string {
  const dir = path.join(st.root, 'instances', `fusecert-${process.pid}-bench${tag}`);
  fs.mkdirSync(dir);
  made.push(dir);
  fs.writeFileSync(path.join(dir, 'tracing_on'), '0');
  fs.writeFileSync(path.join(dir, 'buffer_size_kb'), '16384');
  fs.writeFileSync(path.join(dir, 'trace_clock'), 'mono');
  fs.writeFileSync(path.join(dir, 'options/record-tgid'), '1');
  return dir;
}
function fuseInstance(): string {
  const dir = instance('req');
  for (const ev of ['fuse_request_send', 'fuse_request_end']) {
    fs.writeFileSync(path.join(dir, `events/fuse/${ev}/filter`), `connection == ${m.connection}`);
    fs.writeFileSync(path.join(dir, `events/fuse/${ev}/enable`), '1');
  }
  fs.writeFileSync(path.join(dir, 'tracing_on'), '1');
  return dir;
}
function ioctlInstance(pids: number[] | null): string {
  const dir = instance('io');
  if (pids) {
    fs.writeFileSync(path.join(dir, 'options/event-fork'), '1');
    fs.writeFileSync(path.join(dir, 'set_event_pid'), pids.join(' ') + '\n');
  } else {
    for (const ev of ['sched_process_fork', 'sched_process_exit']) fs.writeFileSync(path.join(dir, `events/sched/${ev}/enable`), '1');
  }
  fs.writeFileSync(
    path.join(dir, 'events/syscalls/sys_enter_ioctl/filter'),
    `cmd == 0x${BACKING_OPEN_CMD.toString(16)} || cmd == 0x${BACKING_CLOSE_CMD.toString(16)}`,
  );
  fs.writeFileSync(path.join(dir, 'events/syscalls/sys_enter_ioctl/enable'), '1');
  fs.writeFileSync(path.join(dir, 'events/syscalls/sys_exit_ioctl/enable'), '1');
  fs.writeFileSync(path.join(dir, 'tracing_on'), '1');
  return dir;
}
function removeAll() {
  for (const dir of made.splice(0).reverse()) {
    for (const [f, v] of [
      ['tracing_on', '0'],
      ['events/enable', '0'],
    ])
      fs.writeFileSync(path.join(dir, f), v);
    for (let i = 0; ; i++) {
      try {
        fs.rmdirSync(dir);
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EBUSY' || i > 50) throw e;
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
      }
    }
  }
}
/** events recorded per instance (entries in per_cpu stats), to check the set-up recorded what it should */
function entries(dir: string): number {
  let n = 0;
  for (const cpu of fs.readdirSync(path.join(dir, 'per_cpu'))) {
    const m1 = /^entries:\s+(\d+)/m.exec(fs.readFileSync(path.join(dir, 'per_cpu', cpu, 'stats'), 'latin1'));
    n += Number(m1?.[1] ?? 0);
  }
  return n;
}

async function run(setUp: SetUp): Promise<{ ms: number; note: string }> {
  await storm(300); // warm-up, unmeasured
  if (setUp === 'bare') return { ms: await storm(), note: '' };
  if (setUp === 'session') {
    const s = await EvidenceSession.open({ connection: m.connection, pids: [m.pid], label: 'bench' });
    try {
      const w = await s.window('storm', () => storm());
      return { ms: w.result, note: `${w.events.length} events` };
    } finally {
      await s.close();
    }
  }
  const dirs: string[] = [];
  if (setUp === 'sys-floor') dirs.push(ioctlInstance([0]));
  if (setUp === 'pid-only') {
    const dir = instance('pid');
    fs.writeFileSync(path.join(dir, 'options/event-fork'), '1');
    fs.writeFileSync(path.join(dir, 'set_event_pid'), '0\n');
    fs.writeFileSync(path.join(dir, 'events/fuse/fuse_request_send/filter'), 'connection == 0');
    fs.writeFileSync(path.join(dir, 'events/fuse/fuse_request_send/enable'), '1');
    fs.writeFileSync(path.join(dir, 'tracing_on'), '1');
    dirs.push(dir);
  }
  if (setUp === 'sys-nopid') {
    const dir = instance('nopid');
    fs.writeFileSync(path.join(dir, 'events/syscalls/sys_enter_ioctl/filter'), 'cmd == 0xdeadbeef');
    fs.writeFileSync(path.join(dir, 'events/syscalls/sys_exit_ioctl/filter'), 'ret == 0x12345678');
    fs.writeFileSync(path.join(dir, 'events/syscalls/sys_enter_ioctl/enable'), '1');
    fs.writeFileSync(path.join(dir, 'events/syscalls/sys_exit_ioctl/enable'), '1');
    fs.writeFileSync(path.join(dir, 'tracing_on'), '1');
    dirs.push(dir);
  }
  if (setUp === 'fuse' || setUp.startsWith('both')) dirs.push(fuseInstance());
  if (setUp === 'ioctl' || (setUp.startsWith('both') && setUp !== 'both-nopid')) dirs.push(ioctlInstance(threadsOf([m.pid])));
  if (setUp === 'both-nopid') dirs.push(ioctlInstance(null));
  const fds: number[] = [];
  let reader: PipeReader | undefined;
  let bytes = 0;
  try {
    if (setUp === 'both+text' || setUp === 'both+raw') {
      const files = setUp === 'both+text' ? ['trace_pipe'] : fs.readdirSync(path.join(dirs[0]!, 'per_cpu')).map((c) => `per_cpu/${c}/trace_pipe_raw`);
      for (const d of dirs) for (const f of files) fds.push(fs.openSync(path.join(d, f), fs.constants.O_RDONLY | fs.constants.O_NONBLOCK));
      // readAtBytes 0: read at every poll, as the session's reader did before it waited for the buffers to fill
      reader = new PipeReader(
        fds.map((fd) => ({ fd, stats: [], readAtBytes: 0 })),
        200,
        (t) => {
          for (const x of t) bytes += x.length;
        },
      );
    }
    const ms = await storm();
    if (reader) await reader.take();
    const n = dirs.map(entries).reduce((a, b) => a + b, 0);
    return { ms, note: reader ? `${(bytes / 1e6).toFixed(1)} MB read` : `${n} events recorded` };
  } finally {
    reader?.stopSync();
    for (const fd of fds) fs.closeSync(fd);
    removeAll();
  }
}

try {
  await storm(); // warm up
  const times = new Map<SetUp, number[]>(chosen.map((c) => [c, []]));
  const cpu = new Map<SetUp, number[]>(chosen.map((c) => [c, []]));
  const notes = new Map<SetUp, string>();
  for (let r = 0; r < rounds; r++) {
    const order = chosen.map((_, i) => chosen[(i + r) % chosen.length]!);
    if (r % 2) order.reverse();
    for (const c of order) {
      const { ms, note } = await run(c);
      times.get(c)!.push(ms);
      cpu.get(c)!.push(lastCpu);
      notes.set(c, note);
    }
  }
  const median = (xs: number[]) => {
    const a = [...xs].sort((x, y) => x - y);
    return a.length % 2 ? a[a.length >> 1]! : (a[a.length / 2 - 1]! + a[a.length / 2]!) / 2;
  };
  const bare = chosen.includes('bare') ? times.get('bare')! : null;
  const cpuBare = chosen.includes('bare') ? cpu.get('bare')! : null;
  const k = Math.max(1, Math.floor((rounds - 1.96 * Math.sqrt(rounds)) / 2));
  console.log(
    `ptfs, ${cycles} open/close cycles per storm, ${rounds} rounds; ratio: median over the rounds of (set-up / bare of the same round), ~95 % interval`,
  );
  for (const c of chosen) {
    const t = times.get(c)!;
    const us = (median(t) * 1000) / cycles;
    const ratios = bare ? t.map((x, i) => x / bare[i]!).sort((x, y) => x - y) : [];
    const r = bare ? `ratio ${median(ratios).toFixed(3)} (${ratios[k - 1]!.toFixed(3)}-${ratios[rounds - k]!.toFixed(3)})` : '';
    const extra = bare ? `+${(us - (median(bare) * 1000) / cycles).toFixed(1)} µs/cycle` : '';
    const cpuUs = median(cpu.get(c)!) / cycles;
    const cpuExtra = cpuBare ? ` (+${(cpuUs - median(cpuBare) / cycles).toFixed(1)})` : '';
    console.log(`${c.padEnd(10)} median ${us.toFixed(1).padStart(6)} µs/cycle  ${r}  ${extra}  cpu ${cpuUs.toFixed(1)} µs/cycle${cpuExtra}  ${notes.get(c)}`);
  }
} finally {
  removeAll();
  await m.stop();
}
