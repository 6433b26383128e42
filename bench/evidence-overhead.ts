// What does an active EvidenceSession cost? Times open/close cycles on a FUSE mount
// (servers/ptfs/ptfs if built, else bindfs) without and with a session, in alternating rounds
// (bare, traced, bare, traced, ...): the best round of each side is compared, so a burst of load
// from something else on the machine does not land on one side only. One run prints the ratio.
//   npx tsx bench/evidence-overhead.ts [cycles] [rounds]
// POLL_MS=0 turns off the session's reader (the pipes are read at flush only), MAIN_THREAD=1 reads
// them on this thread with a timer, READ_AT_FILL=0 makes the worker read at every poll (what it
// did before it waited for the buffers to fill). The time the window's closing flush takes (the
// kernel formatting and the parsing of what the window recorded) is printed apart: it is not part
// of the workload, but it is part of a clause's time.
// Needs root and tracefs. Cleans up its mount, server and tracefs instances.
import fs from 'node:fs';
import path from 'node:path';
import { EvidenceSession, countOf, tracefsStatus } from '../src/evidence/index.ts';
import { havePtfs, startMount } from '../src/evidence/testing.ts';

const cycles = Number(process.argv[2] ?? 10_000);
const rounds = Number(process.argv[3] ?? 3);
const st = await tracefsStatus();
if (!st.available) {
  console.error(`evidence-overhead: ${st.reason}`);
  process.exit(2);
}
const kind = havePtfs() ? 'ptfs' : 'bindfs';
const m = await startMount(kind, [], (src) => fs.writeFileSync(path.join(src, 'f'), 'x'.repeat(4096)));
const file = path.join(m.mnt, 'f');

async function storm(): Promise<number> {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < cycles; i++) {
    const fh = await fs.promises.open(file, 'r');
    await fh.close();
  }
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

let s: EvidenceSession | undefined;
try {
  await storm(); // warm up: lookups cached, server threads running
  const bare: number[] = [];
  const traced: number[] = [];
  const flushes: number[] = [];
  let last: Awaited<ReturnType<EvidenceSession['window']>> | null = null;
  for (let r = 0; r < rounds; r++) {
    bare.push(await storm());
    s = await EvidenceSession.open({
      connection: m.connection,
      pids: [m.pid],
      label: 'bench',
      pollMs: Number(process.env.POLL_MS ?? 200),
      readOnMainThread: process.env.MAIN_THREAD === '1',
      ...(process.env.READ_AT_FILL ? { readAtFill: Number(process.env.READ_AT_FILL) } : {}),
    });
    const t0 = process.hrtime.bigint();
    const w = await s.window('storm', storm);
    traced.push(w.result);
    flushes.push(Number(process.hrtime.bigint() - t0) / 1e6 - w.result);
    // RELEASE replies trail close(): give them a moment before reading the ledger
    await new Promise((res) => setTimeout(res, 300));
    await s.flush();
    last = w;
    if (r < rounds - 1) {
      await s.close();
      s = undefined;
    }
  }
  const b = Math.min(...bare);
  const t = Math.min(...traced);
  const l = s!.ledger();
  console.log(`server: ${kind}, ${cycles} open/close cycles, ${rounds} alternating rounds per side`);
  console.log(`without session: best ${b.toFixed(0)} ms (${((b * 1000) / cycles).toFixed(1)} µs/cycle); rounds ${bare.map((x) => x.toFixed(0)).join(', ')}`);
  console.log(`with session:    best ${t.toFixed(0)} ms (${((t * 1000) / cycles).toFixed(1)} µs/cycle); rounds ${traced.map((x) => x.toFixed(0)).join(', ')}`);
  console.log(`ratio: ${(t / b).toFixed(2)}`);
  console.log(
    `window set-up and closing flush (outside the workload): best ${Math.min(...flushes).toFixed(0)} ms; rounds ${flushes.map((x) => x.toFixed(0)).join(', ')}`,
  );
  console.log(
    `last window: FUSE_OPEN=${countOf(last!.requests, 'FUSE_OPEN')} FUSE_RELEASE=${countOf(last!.requests, 'FUSE_RELEASE')} total=${last!.requests.total} events=${last!.events.length}`,
  );
  console.log(`ledger: ${l.summary()}`);
} finally {
  await s?.close();
  await m.stop();
}
