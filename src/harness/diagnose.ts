// A clause's failure in the words a server author needs: what the user saw (the syscall, the path
// inside the mount, the errno), then what the server did that caused it and the rule it broke,
// read off the connection's timeline by the diagnosis module (src/diagnosis). Called by clause()
// for every failure, so no clause writes its own cause text and no failure shows a raw Node error
// or a temporary path.
import os from 'node:os';
import { causeText, diagnose, type Finding } from '../diagnosis/index.ts';
import { renderExcerpt } from '../evidence/timeline.ts';
import type { EvidenceSession } from '../evidence/index.ts';

/** What a failure is diagnosed on: the clause's Mount, or a mount a clause built itself (nested setups). */
export interface Diagnosable {
  evidence: EvidenceSession | null;
  ws?: { mountpoint: string; source: string } | null;
  claims?: { passthrough: boolean };
}

/** The kernel's monotonic clock in µs: the clock of tracefs's `mono` and of the BPF events. */
export function monoUs(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * Paths as the user of the mount sees them: the mountpoint's prefix goes ('/data/f1'), the
 * source's becomes 'backing:' ('backing:/data/f1'); other temporary paths of the run are cut the
 * same way by their layout (…/mnt/…, …/store/src/…).
 */
export function cleanPaths(text: string, roots: { mountpoint?: string; source?: string } = {}): string {
  const rest = `(/[^\\s'",)]*)?(?=[\\s'",)]|$)`;
  let s = text;
  const inMount = (_: string, r?: string) => r || '/';
  const inSource = (_: string, r?: string) => `backing:${r || '/'}`;
  if (roots.mountpoint) s = s.replace(new RegExp(esc(roots.mountpoint) + rest, 'g'), inMount);
  if (roots.source) s = s.replace(new RegExp(esc(roots.source) + rest, 'g'), inSource);
  const tmp = esc(os.tmpdir());
  s = s.replace(new RegExp(`${tmp}/[^\\s'",)]*?/store/(?:src|merged)${rest}`, 'g'), inSource);
  s = s.replace(new RegExp(`${tmp}/[^\\s'",)]*?/mnt${rest}`, 'g'), inMount);
  return s;
}

/** A raw Node or FFI error as `open(/data/f1) = EIO (i/o error)`; anything else unchanged. */
export function userSaw(e: Error, roots: { mountpoint?: string; source?: string }): string {
  const x = e as NodeJS.ErrnoException & { dest?: string };
  if (x.name === 'SysError') return cleanPaths(e.message.replace(/\) failed: (\w+) \((.*)\)$/, ') = $1 ($2)'), roots);
  if (typeof x.code === 'string' && /^E[A-Z0-9]+$/.test(x.code) && x.syscall) {
    const args = [x.path, x.dest].filter(Boolean).map((p) => cleanPaths(String(p), roots) || '/');
    const words = e.message.replace(/^E[A-Z0-9]+: /, '').replace(/, \w+ '.*$/, '');
    return `${x.syscall}(${args.join(', ')}) = ${x.code} (${words})`;
  }
  return cleanPaths(e.message, roots);
}

export interface FailureStory {
  message: string;
  findings: Finding[];
  /** the timeline lines since the clause began (requests, replies, backing calls) */
  excerpt: string[];
}

const withTimeout = <T>(p: Promise<T>, ms: number): Promise<T | null> =>
  Promise.race([p, new Promise<null>((r) => setTimeout(() => r(null), ms).unref())]).catch(() => null);

/**
 * The failure's message with its cause: `WHAT THE USER SAW — cause: WHAT THE SERVER DID (RULE)`.
 * Without reply evidence (no BPF) the message is only cleaned of temporary paths.
 */
export async function explainFailure(e: Error, m: Diagnosable | undefined, sinceTs: number): Promise<FailureStory> {
  const roots = m?.ws ? { mountpoint: m.ws.mountpoint, source: m.ws.source } : {};
  let message = userSaw(e, roots);
  const ev = m?.evidence;
  if (!ev?.replies) return { message, findings: [], excerpt: [] };
  const tl = await withTimeout(ev.timeline(), 5000);
  if (!tl) return { message, findings: [], excerpt: [] };
  const findings = diagnose(tl, { sinceTs, nowTs: monoUs(), claimsPassthrough: m?.claims?.passthrough ?? true, message });
  const fresh = findings.filter((f) => !message.includes(f.text));
  // a message that already names a finding (FileOpens read the same timeline) gets no second cause
  if (fresh.length === findings.length && findings.length) message += ` — cause: ${causeText(findings)}`;
  return { message, findings, excerpt: renderExcerpt(tl, sinceTs) };
}
