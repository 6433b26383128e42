import { stat, readFile, writeFile, open, readdir } from 'node:fs/promises';
import path from 'node:path';
import { clause, useMount, forEachVariant, runContext, check, fail, errnoOf, expectBytes, pattern, loadTree } from '../src/harness/index.ts';
import { requestsDuring, windowSummary, serverIoCause, probeNegotiation, probeStackDepth } from '../src/harness/index.ts';
import { countOf, wire, type RequestRecord } from '../src/evidence/index.ts';
import { grantedByInit } from '../src/diagnosis/index.ts';
import { O } from '../src/sys/index.ts';

/** The server's INIT reply as the kernel took it (reply evidence), or null without a tracer. */
async function initReply() {
  const tl = await mount.evidence?.timeline();
  return tl?.init?.init ?? null;
}

const mount = useMount();
const tree = loadTree('basic');

clause({
  id: 'NEG-001',
  level: 'MUST',
  title: 'the server mounts, answers INIT and serves a lookup within the mount timeout',
  mount,
  body: async (t) => {
    // ensure() has mounted it within mountTimeoutMs (or the clause failed with the server's stderr)
    const root = await stat(mount.mountpoint);
    check(root.isDirectory(), `the mount root is not a directory (mode ${root.mode.toString(8)})`);
    const f = tree.files.find((x) => x.size > 0 && x.size < 4096)!;
    const st = await stat(mount.path(f.path));
    check(st.size === f.size, `lookup of ${f.path}: size ${st.size}, expected ${f.size}`);
    expectBytes(await readFile(mount.path(f.path)), pattern(f.seed, f.size), `read of ${f.path}`);
    t.note('connection', mount.connection);
  },
});

// ---------------------------------------------------------------------------------------
// NEG-002..006: what the kernel granted the server under test, read from outside (SPEC §5a),
// and whether passthrough opens really bypass the server.

const NOT_GRANTED_CAUSES =
  'the kernel enables passthrough only when the INIT reply carries FUSE_PASSTHROUGH (flags2 bit 5, with FUSE_INIT_EXT), ' +
  'a max_stack_depth of 1 or 2, and does not also enable FUSE_WRITEBACK_CACHE (SPEC §1)';

/** A file the clause alone reads: created in the backing directory, so no page cache hides FUSE_READ. */
async function freshFile(name: string, size: number, seed: number): Promise<{ rel: string; data: Buffer }> {
  const data = pattern(seed, size);
  if (mount.claims.mirror) {
    await writeFile(mount.backing(name), data);
    return { rel: name, data };
  }
  const f = tree.files.find((x) => x.size === 1048579)!;
  return { rel: f.path, data: pattern(f.seed, f.size) };
}

clause({
  id: 'NEG-002',
  level: 'MUST',
  title: 'a server that claims passthrough gets it enabled',
  mount,
  requires: ['passthrough', 'root', 'PLT-001', 'PLT-002'],
  body: async (t) => {
    const probe = await probeNegotiation(mount.server!.pids, mount.connection, mount.backing(tree.files.find((x) => x.size > 0)!.path));
    t.note('probe', probe);
    // what the server asked for, from its INIT reply; the probe (the kernel's answer) must agree with it
    const init = await initReply();
    if (init) {
      t.note('initReply', {
        protocol: `${init.major}.${init.minor}`,
        flags: wire.initFlagNames(init.flags64, [
          'INIT_EXT',
          'PASSTHROUGH',
          'WRITEBACK_CACHE',
          'HANDLE_KILLPRIV',
          'HANDLE_KILLPRIV_V2',
          'DIRECT_IO_ALLOW_MMAP',
        ]),
        maxStackDepth: init.maxStackDepth,
      });
      if (grantedByInit(init) !== probe.granted)
        t.skip(
          'environment',
          `fusecert cannot tell what was negotiated: the INIT reply ${grantedByInit(init) ? 'qualifies' : 'does not qualify'} for passthrough (${wire.initFlagNames(init.flags64, ['INIT_EXT', 'PASSTHROUGH', 'WRITEBACK_CACHE'])}, max_stack_depth ${init.maxStackDepth}) but the borrowed-fd probe says ${probe.granted ? 'granted' : 'not granted'} (${probe.code}): a fusecert or kernel discrepancy, not a verdict on the server`,
        );
    } else t.note('initReply', `unavailable: ${mount.repliesError ?? mount.evidence?.repliesError ?? 'no reply evidence'}`);
    check(
      probe.granted,
      `passthrough is not enabled on connection ${mount.connection}: the borrowed-fd probe (BACKING_OPEN with flags=1 on a duplicate of the server's /dev/fuse fd) ` +
        `gave ${probe.code}${probe.code === 'EPERM' ? ' (not granted)' : ''}; ${NOT_GRANTED_CAUSES}`,
    );
    if (!mount.evidence || mount.evidence.ledgerUnavailable) {
      t.note('ledger', `unavailable: ${mount.evidenceError ?? mount.evidence?.ledgerUnavailable}`);
      return;
    }
    const f = await freshFile('neg-002.bin', 65536, 202);
    // an open the server claims to pass through: O_RDONLY, or O_WRONLY for a server that passes
    // only writes through (claims.passthroughIo "wo")
    const flags = mount.claims.passthroughIo === 'wo' ? O.O_WRONLY : O.O_RDONLY;
    const win = await requestsDuring(mount, 'NEG-002 open', async () => {
      const fh = await open(mount.path(f.rel), flags);
      await fh.close();
    });
    t.note('window', windowSummary(win));
    check(
      win.ledger.opens.some((o) => o.ok),
      `passthrough is granted, but opening /${f.rel} (${flags === O.O_WRONLY ? 'O_WRONLY' : 'O_RDONLY'}) made no successful BACKING_OPEN (${win.ledger.summary()}): the server does not use it`,
    );
  },
});

clause({
  id: 'NEG-003',
  level: 'MUST',
  title: 'no BACKING_OPEN fails with EPERM/ENOTTY for lack of negotiation',
  mount,
  requires: ['passthrough', 'ioctl-trace', 'PLT-002'],
  body: async (t) => {
    const files = tree.files.filter((x) => x.size > 0).slice(0, 6);
    const errors: string[] = [];
    const win = await requestsDuring(mount, 'NEG-003 opens', async () => {
      for (const f of files) {
        for (const flags of ['r', 'r+'] as const) {
          try {
            const fh = await open(mount.path(f.path), flags);
            await fh.close();
          } catch (e) {
            errors.push(`open of /${f.path} (${flags}): ${errnoOf(e)}`);
          }
        }
      }
      try {
        const fh = await open(mount.path('neg-003.new'), 'w');
        await fh.close();
      } catch (e) {
        errors.push(`create of /neg-003.new: ${errnoOf(e)}`);
      }
    });
    t.note('window', windowSummary(win));
    if (errors.length) t.note('openErrors', errors);
    const bad = win.ledger.failedOpens().filter((o) => o.code === 'EPERM' || o.code === 'ENOTTY');
    if (bad.length) {
      const probe = await probeNegotiation(mount.server!.pids, mount.connection, mount.backing(files[0]!.path)).catch((e) => ({
        granted: null,
        code: errnoOf(e),
      }));
      t.note('probe', probe);
      fail(
        `${bad.length} BACKING_OPEN call(s) of the server failed with ${[...new Set(bad.map((o) => o.code))].join('/')} ` +
          `(passthrough ${probe.granted ? 'is' : probe.granted === false ? 'is NOT' : 'may not be'} granted on this connection, probe: ${probe.code}): ` +
          `the server used the backing ioctls without checking what the kernel granted in INIT (or it lacks CAP_SYS_ADMIN in the initial user namespace)` +
          (errors.length ? `; the opens then failed: ${errors.slice(0, 3).join(', ')}` : ''),
      );
    }
  },
});

clause({
  id: 'NEG-004',
  level: 'MUST',
  title: 'reads of a passthrough-opened regular file send no FUSE_READ',
  mount,
  requires: ['passthrough', 'passthrough-data', 'passthrough-reads', 'tracefs', 'PLT-001'],
  body: async (t) => {
    const f = await freshFile('neg-004.bin', 1048579, 204);
    const win = await requestsDuring(mount, 'NEG-004 read', async () => {
      const fh = await open(mount.path(f.rel), 'r');
      try {
        const buf = Buffer.alloc(f.data.length + 4096);
        let off = 0;
        for (;;) {
          const { bytesRead } = await fh.read(buf, off, Math.min(131072, buf.length - off), off);
          if (bytesRead === 0) break;
          off += bytesRead;
        }
        return buf.subarray(0, off);
      } finally {
        await fh.close();
      }
    });
    t.note('window', windowSummary(win));
    expectBytes(win.result, f.data, `read of /${f.rel}`);
    const reads = countOf(win.requests, 'FUSE_READ');
    if (reads > 0)
      fail(`reading /${f.rel} (${f.data.length} bytes) through an fd opened O_RDONLY sent ${reads} FUSE_READ to the server: ${serverIoCause(win)}`);
  },
});

clause({
  id: 'NEG-005',
  level: 'MUST',
  title: 'writes to a passthrough-opened regular file send no FUSE_WRITE',
  mount,
  requires: ['passthrough', 'passthrough-data', 'passthrough-writes', 'tracefs', 'PLT-001'],
  body: async (t) => {
    const size = 1048576 + 4099;
    const data = pattern(205, size);
    const win = await requestsDuring(mount, 'NEG-005 write', async () => {
      const fh = await open(mount.path('neg-005.bin'), 'w');
      try {
        for (let off = 0; off < size; off += 131072) {
          const n = Math.min(131072, size - off);
          const { bytesWritten } = await fh.write(data, off, n, off);
          check(bytesWritten === n, `pwrite(${n} at ${off}) wrote ${bytesWritten}`);
        }
      } finally {
        await fh.close();
      }
    });
    t.note('window', windowSummary(win));
    const writes = countOf(win.requests, 'FUSE_WRITE');
    if (writes > 0)
      fail(
        `writing ${size} bytes to /neg-005.bin through an fd opened O_WRONLY|O_CREAT|O_TRUNC sent ${writes} FUSE_WRITE to the server: ${serverIoCause(win)}`,
      );
    expectBytes(await readFile(mount.path('neg-005.bin')), data, 'read back of /neg-005.bin');
    if (mount.claims.mirror) expectBytes(await readFile(mount.backing('neg-005.bin')), data, 'the backing file of /neg-005.bin');
  },
});

clause({
  id: 'NEG-006',
  level: 'INFO',
  title: 'negotiated stack depth (1 or 2)',
  mount,
  requires: ['passthrough', 'root', 'PLT-002', 'PLT-006'],
  body: async (t) => {
    const probe = await probeNegotiation(mount.server!.pids, mount.connection, mount.backing(tree.files.find((x) => x.size > 0)!.path));
    if (!probe.granted) t.skip('environment', `not measurable: passthrough is not granted on this connection (probe: ${probe.code}; see NEG-002)`);
    const depth = await probeStackDepth(mount.server!.pids, mount.connection);
    t.note('stackDepth', depth.depth);
    const init = await initReply();
    if (init) t.note('initMaxStackDepth', init.maxStackDepth);
    if (init && depth.depth !== null && init.maxStackDepth !== depth.depth)
      t.skip(
        'environment',
        `fusecert cannot tell the depth: the INIT reply gave max_stack_depth ${init.maxStackDepth}, the overlayfs probe measured ${depth.depth}: a fusecert or kernel discrepancy`,
      );
    t.note('overlayfsBackingOpen', depth.result);
    check(
      depth.depth !== null,
      `BACKING_OPEN of an overlayfs file through the server's connection gave ${depth.result}: expected ELOOP (depth 1) or an id (depth 2)`,
    );
  },
});

// ---------------------------------------------------------------------------------------
// NEG-007: the transport. Which one carried a request is the kernel's fact (FR_URING in the
// request's flags at its end, read by the reply tracer), never the server's word: libfuse asked for
// io_uring falls back to /dev/fuse without a word when the kernel does not offer it.

const OVER_IO_URING = BigInt(wire.INIT_BIT.OVER_IO_URING!);
/** Did the kernel offer FUSE_OVER_IO_URING in its INIT request (fuse_init_in flags/flags2 at 12/16)? */
const offeredUring = (init: RequestRecord | undefined): boolean | null => {
  const a = init?.send?.arg;
  if (!a || a.length < 20) return null;
  const flags64 = BigInt(a.readUInt32LE(12)) | (BigInt(a.readUInt32LE(16)) << 32n);
  return ((flags64 >> OVER_IO_URING) & 1n) === 1n;
};
const names = (rs: RequestRecord[]) => rs.map((r) => `${r.opname.replace('FUSE_', '')} ${r.unique}`).join(', ');

forEachVariant({}, (vm) => {
  clause({
    id: 'NEG-007',
    level: 'MUST',
    title: 'the transport the server claims serves its requests',
    mount: vm,
    requires: ['root'],
    body: async (t) => {
      // lookups, getattr, opendir/readdir/releasedir: requests of several kinds, and no file open,
      // so a server whose opens fail (NEG-002..005, the BKG and IOM clauses judge those) is still
      // judged on its transport alone
      const f = tree.files.find((x) => x.size > 0)!;
      await stat(vm.path(f.path));
      await readdir(vm.mountpoint);
      await readdir(vm.path(path.dirname(f.path)));
      const claimed = vm.claims.transport;
      // a kernel without FUSE over io_uring has one transport: a dev claim holds without evidence
      if (claimed === 'dev' && runContext().platform.fuseIoUring === false) {
        t.note('served', 'this kernel has no FUSE over io_uring: every request travels over /dev/fuse');
        return;
      }
      const tl = await vm.evidence?.timeline();
      if (!tl)
        return t.skip(
          'environment',
          `${vm.repliesError ?? vm.evidence?.repliesError ?? 'reply evidence unavailable: no reply tracer'} (only the reply evidence shows which transport carried a request)`,
        );
      const c = tl.transports();
      const offered = offeredUring(tl.requests.find((r) => r.opname === 'FUSE_INIT'));
      const asked = tl.init?.init ? ((tl.init.init.flags64 >> OVER_IO_URING) & 1n) === 1n : null;
      t.note('transport', {
        claimed,
        init: c.init,
        ring: c.ring,
        dev: c.dev,
        unanswered: c.unanswered,
        unknown: c.unknown,
        kernelOffered: offered,
        serverAsked: asked,
      });
      if (c.ring + c.dev === 0) {
        if (c.unknown > 0)
          return t.skip(
            'environment',
            `the reply tracer does not say which transport carried a request (${c.unknown} ends without it): rebuild it (make -C src/evidence/replies)`,
          );
        fail(`no request of connection ${vm.connection} ended after INIT (${c.unanswered} ended without a reply): nothing to tell the transport by`);
      }
      const total = c.ring + c.dev;
      const init = `INIT: the kernel ${offered === null ? 'may have offered' : offered ? 'offered' : 'did not offer'} FUSE_OVER_IO_URING, the server's reply ${asked === null ? 'was not seen' : asked ? 'asked for it' : 'did not ask for it'}`;
      if (claimed === 'io_uring' && c.dev > 0)
        fail(
          `the server claims transport io_uring, but ${c.dev} of ${total} requests after INIT ended over /dev/fuse (${names(c.firstDev)}${c.dev > c.firstDev.length ? ', ...' : ''}) and ${c.ring} over the ring; ${init}` +
            (offered === false
              ? ': the kernel offers it only while the fuse module parameter enable_uring is Y (a fusecert run certifying an io_uring claim sets it)'
              : asked === false
                ? ': a libfuse server asks for it only with -o io_uring, and otherwise serves /dev/fuse without a word'
                : c.ring === 0
                  ? ': the server asked for it but never registered its ring entries (or the registration failed): the kernel served /dev/fuse'
                  : ''),
        );
      if (claimed === 'dev' && c.ring > 0)
        fail(
          `the server claims transport dev (/dev/fuse), but ${c.ring} of ${total} requests after INIT ended over an io_uring ring (${names(c.firstRing)}${c.ring > c.firstRing.length ? ', ...' : ''}); ${init}: claim transport io_uring in its manifest`,
        );
      t.note(
        'served',
        `${total} requests after INIT, every one over ${claimed === 'io_uring' ? 'the io_uring ring' : '/dev/fuse'} (INIT over ${c.init ?? '?'})`,
      );
    },
  });
});
