// What does an active EvidenceSession cost? Times 10,000 open/close cycles on a FUSE mount
// (servers/ptfs/ptfs if built, else bindfs) without and with a session, one run each.
//   npx tsx bench/evidence-overhead.ts [cycles]     (POLL_MS=0 turns off the session's poll timer)
// Needs root and tracefs. Cleans up its mount, server and tracefs instances.
import fs from 'node:fs';
import path from 'node:path';
import { EvidenceSession, countOf, tracefsStatus } from '../src/evidence/index.ts';
import { havePtfs, startMount } from '../src/evidence/testing.ts';

const cycles = Number(process.argv[2] ?? 10_000);
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
  const bare = await storm();
  s = await EvidenceSession.open({ connection: m.connection, pids: [m.pid], label: 'bench', pollMs: Number(process.env.POLL_MS ?? 200) });
  const w = await s.window('storm', storm);
  const traced = w.result;
  // RELEASE replies trail close(): give them a moment before reading the ledger
  await new Promise((r) => setTimeout(r, 300));
  await s.flush();
  const l = s.ledger();
  console.log(`server: ${kind}, ${cycles} open/close cycles`);
  console.log(`without session: ${bare.toFixed(0)} ms (${((bare * 1000) / cycles).toFixed(1)} µs/cycle)`);
  console.log(`with session:    ${traced.toFixed(0)} ms (${((traced * 1000) / cycles).toFixed(1)} µs/cycle)`);
  console.log(`ratio: ${(traced / bare).toFixed(2)}`);
  console.log(`window: FUSE_OPEN=${countOf(w.requests, 'FUSE_OPEN')} FUSE_RELEASE=${countOf(w.requests, 'FUSE_RELEASE')} total=${w.requests.total} events=${w.events.length}`);
  console.log(`ledger: ${l.summary()}`);
} finally {
  await s?.close();
  await m.stop();
}
