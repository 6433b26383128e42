// Opens of one file, each in its own evidence window, so that an open failing with EIO can be
// explained in the contract's words: which other opens were held and in which io mode (from the
// ledger: did their open make or share a backing id?), and what the server did with backing ids
// while answering the failing one.
import { O, openAsync, closeAsync } from '../sys/index.ts';
import type { EvidenceWindow } from '../evidence/index.ts';
import { errnoOf, fail } from './expect.ts';
import { requestsDuring, type Observed } from './windows.ts';
import { diagnose } from '../diagnosis/index.ts';

const MODIFIERS: [string, number][] = [
  ['O_CREAT', O.O_CREAT],
  ['O_EXCL', O.O_EXCL],
  ['O_TRUNC', O.O_TRUNC],
  ['O_APPEND', O.O_APPEND],
  ['O_SYNC', O.O_SYNC],
  ['O_DSYNC', O.O_DSYNC],
  ['O_DIRECT', O.O_DIRECT],
  ['O_NOATIME', O.O_NOATIME],
];

/** 0o40002 -> 'O_RDWR|O_DIRECT' (O_CLOEXEC left out) */
export function flagNames(flags: number): string {
  const acc = ['O_RDONLY', 'O_WRONLY', 'O_RDWR', 'O_ACCMODE'][flags & O.O_ACCMODE]!;
  const out = [acc];
  for (const [n, v] of MODIFIERS) {
    if (n === 'O_DSYNC' && (flags & O.O_SYNC) === O.O_SYNC) continue; // O_SYNC includes the O_DSYNC bit
    if ((flags & v) === v) out.push(n);
  }
  return out.join('|');
}

export interface HeldOpen {
  n: number;
  fd: number;
  flags: number;
  /** served in passthrough? from the ledger; null when the ledger is unavailable */
  pt: boolean | null;
}

/** The opens of one file in a mount. */
export class FileOpens {
  readonly held: HeldOpen[] = [];
  private count = 0;
  readonly useLedger: boolean;

  constructor(
    readonly mount: Observed,
    readonly rel: string,
  ) {
    this.useLedger = !!mount.evidence && !mount.evidence.ledgerUnavailable;
  }

  get display(): string {
    return '/' + this.rel.replace(/^\/+/, '');
  }

  /** Open with `flags`; an error is thrown as a clause failure that names the cause. */
  async open(flags: number, mode = 0o644): Promise<HeldOpen> {
    const n = ++this.count;
    const p = this.mount.path(this.rel);
    if (!this.useLedger) {
      try {
        const fd = await openAsync(p, flags | O.O_CLOEXEC, mode);
        const h = { n, fd, flags, pt: null };
        this.held.push(h);
        return h;
      } catch (e) {
        fail(this.explain(n, flags, errnoOf(e), null));
      }
    }
    let err: string | null = null;
    const win = await requestsDuring(this.mount, `open #${n} of ${this.display}`, async () => {
      try {
        return await openAsync(p, flags | O.O_CLOEXEC, mode);
      } catch (e) {
        err = errnoOf(e);
        return -1;
      }
    });
    if (err !== null) fail(this.explain(n, flags, err, win));
    const made = win.ledger.opens.some((o) => o.ok);
    const pt = made || this.held.some((h) => h.pt === true);
    const h = { n, fd: win.result, flags, pt };
    this.held.push(h);
    return h;
  }

  async close(h: HeldOpen): Promise<void> {
    const i = this.held.indexOf(h);
    if (i >= 0) this.held.splice(i, 1);
    await closeAsync(h.fd);
  }

  async closeAll(): Promise<void> {
    for (const h of [...this.held]) await this.close(h).catch(() => {});
  }

  /** Why open #n failed, in the contract's words. */
  explain(n: number, flags: number, code: string, win: EvidenceWindow<unknown> | null): string {
    const what = `open #${n} of ${this.display} (${flagNames(flags)}) failed with ${code}`;
    const others = this.held.map((h) => `#${h.n} (${flagNames(h.flags)})`).join(', ');
    if (!win) return `${what}${others ? ` while ${this.display} was open by ${others}` : ''}`;
    // with reply evidence the cause is read off the server's replies, not inferred from the errno
    const tl = win.timeline();
    if (tl) {
      const claims = (this.mount as { claims?: { passthrough: boolean } }).claims;
      const f = diagnose(tl, { sinceTs: win.startTs, claimsPassthrough: claims?.passthrough ?? true })[0];
      if (f) return `${what}${others ? ` while ${this.display} was open by ${others}` : ''}: ${f.text} (${f.rule})`;
    }
    const l = win.ledger;
    const okOpens = l.opens.filter((o) => o.ok);
    const failedOpens = l.failedOpens();
    const links = l.perRequest();
    const closedWhileOpening = links.closes.filter((c) => c.call.ok && !c.request && !c.candidates);
    const ptHeld = this.held.filter((h) => h.pt === true);
    const cachedHeld = this.held.filter((h) => h.pt === false);
    const ids = okOpens.map((o) => o.id).join(', ');
    if (code !== 'EIO') {
      if (failedOpens.length)
        return `${what}: the server's BACKING_OPEN failed with ${failedOpens[0]!.code} and the server passed an error on instead of serving the open without passthrough`;
      return `${what}${others ? ` while ${this.display} was open by ${others}` : ''} (${l.summary()})`;
    }
    if (okOpens.length && closedWhileOpening.length) {
      return `${what}: the server closed backing id ${ids} (BACKING_CLOSE while answering the open, not a RELEASE) before the kernel looked it up: an id must stay registered while the inode has passthrough opens (SPEC §3)`;
    }
    if (ptHeld.length) {
      const by = `while ${this.display} was open in passthrough by open ${ptHeld.map((h) => `#${h.n} (${flagNames(h.flags)})`).join(', ')}`;
      if (okOpens.length)
        return `${what} ${by}: the server opened another backing id (${ids}) for the same inode instead of reusing the inode's id: two ids on one backing file are different backing objects (one id per inode, SPEC §4.3)`;
      return `${what} ${by}: the server answered without FOPEN_PASSTHROUGH (mixed io modes)`;
    }
    if (cachedHeld.length && okOpens.length) {
      return `${what} while ${this.display} was open without passthrough by open ${cachedHeld.map((h) => `#${h.n} (${flagNames(h.flags)})`).join(', ')}: the server answered with FOPEN_PASSTHROUGH (backing id ${ids}) while the inode had cached opens (mixed io modes, SPEC §4.2)`;
    }
    if (okOpens.length) {
      return `${what} although the server had just opened backing id ${ids} and nothing else held the file: either the open reply carried a flag not allowed with FOPEN_PASSTHROUGH (KEEP_CACHE, NONSEEKABLE, STREAM, CACHE_DIR or a bit the kernel does not know; SPEC §3), or the kernel could not open the backing file for this open (a read-only or O_DIRECT-less backing filesystem, a busy executable, a security module; KERNEL-RULES D9)`;
    }
    if (failedOpens.length)
      return `${what}: the server's BACKING_OPEN failed with ${failedOpens[0]!.code} and the server answered EIO instead of serving the open without passthrough`;
    return `${what}${others ? ` while ${this.display} was open by ${others}` : ''}: the server made no BACKING_OPEN for it, so its reply named a backing id that is not live (never opened or already closed), or mixed io modes (${l.summary()})`;
  }
}
