// What does an active EvidenceSession cost? Times open/close cycles on a FUSE mount
// (servers/ptfs/ptfs if built, else bindfs) without and with a session, in pairs of rounds. The
// order within a pair alternates (bare then traced, traced then bare, ...), so a drift of the
// machine's speed during the run (it was there: the bare rounds of a run got faster one after the
// other) lands on both sides, and each side's round starts after a short unmeasured warm-up, so the
// garbage a window's flush leaves and threads gone cold are not measured on the next round. The
// ratio printed is the median of the pairs' ratios (traced / bare of the same pair); the spread of
// the pairs and the best-of-each-side ratio are printed beside it. One run prints the ratio.
//   npx tsx bench/evidence-overhead.ts [cycles per round] [pairs]
// POLL_MS=0 turns off the session's reader (the pipes are read at flush only), MAIN_THREAD=1 reads
// them on this thread with a timer, READ_AT_FILL=0 makes the worker read at every poll (what it
// did before it waited for the buffers to fill). The time the window's closing flush takes (the
// kernel formatting and the parsing of what the window recorded) is printed apart: it is not part
// of the workload, but it is part of a clause's time. The session has reply evidence (the BPF
// tracer, as every mount of a run has when it loads); REPLIES=0 measures the tracefs session alone.
// Needs root and tracefs. Cleans up its mount, server and tracefs instances.
import fs from 'node:fs';
import path from 'node:path';
import { EvidenceSession, ReplyTracer, countOf, replyTracerStatus, tracefsStatus } from '../src/evidence/index.ts';
import { havePtfs, startMount } from '../src/evidence/testing.ts';
import { medianInterval } from '../src/harness/stats.ts';

const cycles = Number(process.argv[2] ?? 3000);
const pairs = Number(process.argv[3] ?? 31);
const WARM = 300;
const st = await tracefsStatus();
if (!st.available) {
  console.error(`evidence-overhead: ${st.reason}`);
  process.exit(2);
}
const withReplies = process.env.REPLIES !== '0';
if (withReplies && !replyTracerStatus().available) {
  console.error(`evidence-overhead: ${replyTracerStatus().reason} (REPLIES=0 measures without)`);
  process.exit(2);
}
const kind = havePtfs() ? 'ptfs' : 'bindfs';
const m = await startMount(kind, [], (src) => fs.writeFileSync(path.join(src, 'f'), 'x'.repeat(4096)));
const file = path.join(m.mnt, 'f');

async function storm(n = cycles): Promise<number> {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    const fh = await fs.promises.open(file, 'r');
    await fh.close();
  }
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

const median = (xs: number[]) => medianInterval(xs).median;

let s: EvidenceSession | undefined;
try {
  await storm(); // warm up: lookups cached, server threads running, this loop optimised
  const bare: number[] = [];
  const traced: number[] = [];
  const flushes: number[] = [];
  let lastCounts = '';
  let ledger = '';
  const runBare = async () => {
    await storm(WARM);
    bare.push(await storm());
  };
  const runTraced = async (last: boolean) => {
    let replies: ReplyTracer | undefined;
    if (withReplies) {
      replies = await ReplyTracer.start();
      await replies.setConnection(m.connection, [m.pid]);
    }
    s = await EvidenceSession.open({
      connection: m.connection,
      pids: [m.pid],
      ...(replies ? { replies } : {}),
      label: 'bench',
      pollMs: Number(process.env.POLL_MS ?? 200),
      readOnMainThread: process.env.MAIN_THREAD === '1',
      ...(process.env.READ_AT_FILL ? { readAtFill: Number(process.env.READ_AT_FILL) } : {}),
    });
    // the warm-up comes after the set-up, as on the bare side it comes right before the round:
    // a tracer's start (loading and verifying its programs, ~100 ms) between warm-up and round
    // left the server's and the thread pool's threads cold and was measured as the tracer's cost
    await storm(WARM);
    const t0 = process.hrtime.bigint();
    const w = await s.window('storm', () => storm());
    traced.push(w.result);
    flushes.push(Number(process.hrtime.bigint() - t0) / 1e6 - w.result);
    lastCounts = `FUSE_OPEN=${countOf(w.requests, 'FUSE_OPEN')} FUSE_RELEASE=${countOf(w.requests, 'FUSE_RELEASE')} total=${w.requests.total} events=${w.events.length} reply events=${w.replies.length}`;
    if (last) {
      // RELEASE replies trail close(): give them a moment before reading the ledger
      await new Promise((res) => setTimeout(res, 300));
      await s.flush();
      ledger = s.ledger().summary();
    }
    await s.close();
    s = undefined;
  };
  for (let r = 0; r < pairs; r++) {
    if (r % 2 === 0) {
      await runBare();
      await runTraced(r === pairs - 1);
    } else {
      await runTraced(r === pairs - 1);
      await runBare();
    }
  }
  const ratios = traced.map((t, i) => t / bare[i]!);
  const fmt = (xs: number[]) => xs.map((x) => x.toFixed(0)).join(', ');
  const us = (ms: number) => ((ms * 1000) / cycles).toFixed(1);
  console.log(
    `server: ${kind}, ${cycles} open/close cycles per round, ${pairs} pairs of rounds (bare+traced, then traced+bare, ...); reply evidence ${withReplies ? 'on' : 'off'}`,
  );
  console.log(`without session: median ${us(median(bare))} µs/cycle, best ${us(Math.min(...bare))}; rounds (ms) ${fmt(bare)}`);
  console.log(`with session:    median ${us(median(traced))} µs/cycle, best ${us(Math.min(...traced))}; rounds (ms) ${fmt(traced)}`);
  const sorted = [...ratios].sort((x, y) => x - y);
  const q = (f: number) => sorted[Math.min(sorted.length - 1, Math.floor(f * sorted.length))]!;
  console.log(
    `pair ratios: ${ratios.map((x) => x.toFixed(3)).join(' ')} (middle half ${q(0.25).toFixed(3)}-${q(0.75).toFixed(3)}); best-of-each-side ratio ${(Math.min(...traced) / Math.min(...bare)).toFixed(3)}`,
  );
  // a distribution-free ~95 % interval of the median: the k-th smallest and k-th largest pair ratio (src/harness/stats.ts)
  const iv = medianInterval(ratios);
  console.log(`median pair ratio ${iv.median.toFixed(3)}, ~95 % interval ${iv.low.toFixed(3)}-${iv.high.toFixed(3)} (distribution-free, ${pairs} pairs)`);
  console.log(`ratio: ${median(ratios).toFixed(2)}`);
  console.log(`window set-up and closing flush (outside the workload): median ${median(flushes).toFixed(0)} ms; rounds ${fmt(flushes)}`);
  console.log(`last window: ${lastCounts}`);
  console.log(`ledger of the last session: ${ledger}`);
} finally {
  await s?.close();
  await m.stop();
}
