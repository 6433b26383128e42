// Reads trace_pipe files on a worker thread. Reading trace_pipe is where the kernel formats each
// event as text, and done on the main thread every pollMs it stalled the very workload being
// observed (bench/evidence-overhead.ts); done on a worker every pollMs it still competed with the
// workload for the CPUs. So the worker reads only when asked (take()) or when a ring buffer fills
// up: every pollMs it reads the per-CPU stats of each pipe's instance and drains the pipes once a
// CPU holds `readAtBytes` unread bytes, so the buffers never wrap while nobody asks. Between
// reads it costs one stats read per CPU every pollMs. It keeps the text until the main thread
// asks for it; only the worker ever reads the pipes while it runs, so the text of each pipe
// stays in order.
//
// The handshake is a few words of shared memory, so it also works from synchronous code (close
// and the process exit hook). REQ counts requests for the text read so far: every take() adds
// one and waits until a hand-over covers its number, so requests that cross never get lost.
// STOP ends the worker; DONE is set once it will read no more, and only then may the main thread
// close the fds.
import { Worker } from 'node:worker_threads';

const REQ = 0;
const STOP = 1;
const DONE = 2;

const WORKER = `
const { workerData, parentPort } = require('node:worker_threads');
const fs = require('node:fs');
const { pipes, pollMs, shared } = workerData;
const fds = pipes.map((p) => p.fd);
const words = new Int32Array(shared);
const text = fds.map(() => []);
// bytes not yet read in the fullest CPU buffer of a pipe's instance ("bytes:" of per_cpu/cpuN/stats)
function fullest(p) {
  let max = 0;
  for (const f of p.stats) {
    let s = '';
    try {
      s = fs.readFileSync(f, 'latin1');
    } catch {
      return Infinity; // unknown: read
    }
    const m = /^bytes: ([0-9]+)/m.exec(s);
    if (!m) return Infinity;
    max = Math.max(max, Number(m[1]));
  }
  return max;
}
function filling() {
  return pipes.some((p) => fullest(p) >= p.readAtBytes);
}
const buf = Buffer.allocUnsafe(1 << 16);
let failed = null;
let served = 0;
function readAll() {
  fds.forEach((fd, i) => {
    for (;;) {
      let n;
      try {
        n = fs.readSync(fd, buf, 0, buf.length, null);
      } catch (e) {
        if (e.code !== 'EAGAIN') failed = failed || e.message;
        return;
      }
      if (n <= 0) return;
      text[i].push(buf.toString('latin1', 0, n));
    }
  });
}
while (Atomics.load(words, ${STOP}) === 0) {
  const req = Atomics.load(words, ${REQ});
  if (req === served && filling()) readAll();
  if (req !== served) {
    readAll(); // what the kernel had when the request was made: it was made after the read above began
    parentPort.postMessage({ text: text.map((t) => t.splice(0).join('')), upTo: req, failed });
    served = req;
  }
  Atomics.wait(words, ${REQ}, served, pollMs);
}
Atomics.store(words, ${DONE}, 1);
Atomics.notify(words, ${DONE});
`;

export interface PipeToRead {
  fd: number;
  /** per_cpu/cpuN/stats of the pipe's instance */
  stats: string[];
  /** unread bytes in one CPU's buffer at which the worker reads without being asked */
  readAtBytes: number;
}

export class PipeReader {
  private readonly words = new Int32Array(new SharedArrayBuffer(12));
  private readonly worker: Worker;
  private waiting: { ticket: number; resolve: () => void; reject: (e: Error) => void }[] = [];
  private error: string | null = null;
  private stopped = false;
  /**
   * Resolves once the worker runs (its thread started and its script began), rejects if it could
   * not start. Starting a worker takes tens of ms of CPU on a thread of its own; a caller that
   * waits for this before timing anything does not have that start-up land on its workload.
   */
  readonly ready: Promise<void>;

  /**
   * `onText` gets what was read, one string per pipe (in `pipes` order), before any take() resolves.
   * Each pipe: its fd, the stats files of its instance's CPUs, and how many unread bytes in one
   * CPU's buffer make the worker read before it is asked (0: read at every poll).
   */
  constructor(pipes: PipeToRead[], pollMs: number, onText: (text: string[]) => void) {
    this.worker = new Worker(WORKER, { eval: true, workerData: { pipes, pollMs: Math.max(1, pollMs), shared: this.words.buffer } });
    // referenced until it runs: an awaited `ready` alone keeps no process alive
    let started = () => {};
    let failed: (e: Error) => void = () => {};
    this.ready = new Promise((resolve, reject) => {
      started = resolve;
      failed = reject;
    });
    this.ready.catch(() => {}); // reported by take() and by whoever awaits ready
    this.worker.once('online', () => {
      if (this.waiting.length === 0) this.worker.unref();
      started();
    });
    this.worker.on('message', (m: { text: string[]; upTo: number; failed: string | null }) => {
      if (m.failed) this.error = m.failed;
      onText(m.text);
      const done = this.waiting.filter((w) => w.ticket <= m.upTo);
      this.waiting = this.waiting.filter((w) => w.ticket > m.upTo);
      for (const w of done) this.error ? w.reject(new Error(`reading trace_pipe: ${this.error}`)) : w.resolve();
      if (this.waiting.length === 0) this.worker.unref();
    });
    this.worker.on('error', (e) => {
      this.error = e.message;
      failed(e); // no effect once it runs
      for (const w of this.waiting.splice(0)) w.reject(e);
    });
    this.worker.on('exit', (code) => {
      failed(new Error(`the trace_pipe reader exited (code ${code}) before it started`));
      // not asked to stop: nobody reads the pipes any more, so no take() could be answered
      if (this.stopped) return;
      this.error ??= `the reader thread exited (code ${code})`;
      for (const w of this.waiting.splice(0)) w.reject(new Error(`reading trace_pipe: ${this.error}`));
    });
  }

  /** Resolves once everything the kernel had when it was called has been handed to onText. */
  take(): Promise<void> {
    if (this.stopped) return Promise.reject(new Error('the trace_pipe reader is stopped'));
    if (this.error) return Promise.reject(new Error(`reading trace_pipe: ${this.error}`));
    this.worker.ref(); // until the answer comes: an awaited promise alone keeps no process alive
    return new Promise((resolve, reject) => {
      const ticket = Atomics.add(this.words, REQ, 1) + 1;
      this.waiting.push({ ticket, resolve, reject });
      Atomics.notify(this.words, REQ);
    });
  }

  /**
   * Stop reading, synchronously: after it returns no thread reads the fds any more and the
   * caller may close them. Text the worker had not handed over is dropped (close needs none).
   */
  stopSync(): void {
    if (this.stopped) return;
    this.stopped = true;
    Atomics.store(this.words, STOP, 1);
    Atomics.add(this.words, REQ, 1);
    Atomics.notify(this.words, REQ);
    Atomics.wait(this.words, DONE, 0, 2000);
    void this.worker.terminate();
  }
}
