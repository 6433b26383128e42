// Standalone reproducers: a clause that can say what it did as a short list of file operations
// (ReproOp) gets, when it fails, a Python 3 script in the run's report folder that replays those
// operations against any mount of the server and prints what is wrong, so a server author can
// reproduce the failure without fusecert. The script carries its own model of the file (the same
// pattern(seed, size) bytes as the suites), so its expectations never come from the mount.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/** Open flags by name, as the script passes them to os.open. */
export type FlagName = 'O_RDONLY' | 'O_WRONLY' | 'O_RDWR' | 'O_APPEND' | 'O_TRUNC' | 'O_CREAT' | 'O_EXCL' | 'O_DIRECT' | 'O_SYNC' | 'O_DSYNC' | 'O_NOATIME';

export type ReproOp =
  /** write the whole file (pattern(seed, size)) through the mount, closed at once */
  | { op: 'create'; path: string; seed: number; size: number }
  /** open PATH as fd NAME; O_TRUNC empties the model; O_CREAT starts an empty one */
  | { op: 'open'; fd: string; path: string; flags: FlagName[] }
  /** pwrite pattern(seed, len) at off (at the end for an O_APPEND fd) */
  | { op: 'pwrite'; fd: string; off: number; seed: number; len: number }
  /** pread len bytes at off and compare with the model (short reads at EOF included) */
  | { op: 'pread'; fd: string; off: number; len: number }
  | { op: 'ftruncate'; fd: string; size: number }
  | { op: 'truncate'; path: string; size: number }
  /** fstat of each fd and stat of each path must show the model's size */
  | { op: 'sizes'; fds: string[]; paths: string[] }
  /** n opens of PATH at once from threads (flags alternate between the lists), closed again */
  | { op: 'burst'; path: string; n: number; flags: FlagName[][] }
  /** open, read to EOF, close, and compare with the model */
  | { op: 'readall'; path: string }
  | { op: 'close'; fd: string };

export interface ReproInfo {
  id: string;
  title: string;
  server: string;
  reason: string;
}

const PY = String.raw`import json, mmap, os, sys, threading

OPS = json.loads(__OPS__)
INFO = json.loads(__INFO__)
FLAGS = {n: getattr(os, n) for n in ("O_RDONLY", "O_WRONLY", "O_RDWR", "O_APPEND", "O_TRUNC", "O_CREAT", "O_EXCL", "O_DIRECT", "O_SYNC", "O_DSYNC", "O_NOATIME")}


def pattern(seed, size, offset=0):
    """The bytes fusecert writes: a splitmix-style hash of (seed, 4-byte block), little endian."""
    out = bytearray(size)
    m = 0xFFFFFFFF
    for i in range(size):
        pos = offset + i
        x = (((pos // 4) * 0x9E3779B1) & m) ^ (((seed & m) * 0x85EBCA6B) & m)
        x = ((x ^ (x >> 16)) * 0x7FEB352D) & m
        x = ((x ^ (x >> 15)) * 0x846CA68B) & m
        x = x ^ (x >> 16)
        out[i] = (x >> (8 * (pos % 4))) & 0xFF
    return bytes(out)


def flags_of(names):
    f = 0
    for n in names:
        f |= FLAGS[n]
    return f | os.O_CLOEXEC


def aligned(n):
    return mmap.mmap(-1, max(4096, (n + 4095) // 4096 * 4096))


def main():
    if len(sys.argv) != 2 or not os.path.isdir(sys.argv[1]):
        print(f"usage: {sys.argv[0]} MOUNTPOINT   (a mount of the server under test; run as root)")
        return 2
    mnt = sys.argv[1]
    print(f"{INFO['id']}: {INFO['title']}")
    print(f"fusecert saw on {INFO['server']}: {INFO['reason']}")
    models, fds, fdflags, fdpath, made, problems = {}, {}, {}, {}, set(), []

    def bad(msg):
        problems.append(msg)
        print("FAIL: " + msg)

    def full(rel):
        return os.path.join(mnt, rel)

    def want_equal(got, want, what):
        if got == want:
            return
        if len(got) != len(want):
            bad(f"{what}: {len(got)} bytes, expected {len(want)}")
        else:
            i = next(k for k in range(len(got)) if got[k] != want[k])
            bad(f"{what}: byte {i} is {got[i]:#04x}, expected {want[i]:#04x}")

    try:
        for o in OPS:
            op = o["op"]
            try:
                if op == "create":
                    data = pattern(o["seed"], o["size"])
                    with open(full(o["path"]), "wb") as f:
                        f.write(data)
                    made.add(o["path"])
                    models[o["path"]] = bytearray(data)
                elif op == "open":
                    fd = os.open(full(o["path"]), flags_of(o["flags"]), 0o644)
                    fds[o["fd"]], fdflags[o["fd"]], fdpath[o["fd"]] = fd, o["flags"], o["path"]
                    if "O_CREAT" in o["flags"]:
                        made.add(o["path"])
                        models.setdefault(o["path"], bytearray())
                    if "O_TRUNC" in o["flags"]:
                        models[o["path"]] = bytearray()
                    print(f"ok:   open {o['path']} {'|'.join(o['flags'])} as {o['fd']}")
                elif op == "pwrite":
                    data = pattern(o["seed"], o["len"])
                    buf = aligned(len(data))
                    buf[: len(data)] = data
                    n = os.pwritev(fds[o["fd"]], [memoryview(buf)[: len(data)]], o["off"])
                    m = models[fdpath[o["fd"]]]
                    at = len(m) if "O_APPEND" in fdflags[o["fd"]] else o["off"]
                    if n != len(data):
                        bad(f"pwrite of {len(data)} bytes at {o['off']} through {o['fd']} wrote {n}")
                    if len(m) < at + n:
                        m.extend(b"\0" * (at + n - len(m)))
                    m[at : at + n] = data[:n]
                elif op == "pread":
                    buf = aligned(o["len"])
                    n = os.preadv(fds[o["fd"]], [memoryview(buf)[: o["len"]]], o["off"])
                    m = models[fdpath[o["fd"]]]
                    want_equal(bytes(buf[:n]), bytes(m[o["off"] : o["off"] + o["len"]]), f"pread of {o['len']} bytes at {o['off']} through {o['fd']} ({'|'.join(fdflags[o['fd']])})")
                elif op == "ftruncate":
                    os.ftruncate(fds[o["fd"]], o["size"])
                    m = models[fdpath[o["fd"]]]
                    del m[o["size"] :]
                    m.extend(b"\0" * (o["size"] - len(m)))
                elif op == "truncate":
                    os.truncate(full(o["path"]), o["size"])
                    m = models[o["path"]]
                    del m[o["size"] :]
                    m.extend(b"\0" * (o["size"] - len(m)))
                elif op == "sizes":
                    for name in o["fds"]:
                        s = os.fstat(fds[name]).st_size
                        want = len(models[fdpath[name]])
                        if s != want:
                            bad(f"fstat of {name} ({fdpath[name]}) shows size {s}, expected {want}")
                    for rel in o["paths"]:
                        s = os.stat(full(rel)).st_size
                        if s != len(models[rel]):
                            bad(f"stat of {rel} shows size {s}, expected {len(models[rel])}")
                elif op == "burst":
                    errs = []

                    def one(k):
                        try:
                            os.close(os.open(full(o["path"]), flags_of(o["flags"][k % len(o["flags"])])))
                        except OSError as e:
                            errs.append(os.strerror(e.errno))

                    ts = [threading.Thread(target=one, args=(k,)) for k in range(o["n"])]
                    for t in ts:
                        t.start()
                    for t in ts:
                        t.join()
                    if errs:
                        bad(f"{len(errs)} of {o['n']} concurrent opens of {o['path']} failed ({', '.join(sorted(set(errs)))}) while {', '.join(fds) or 'no fd'} stayed open")
                elif op == "readall":
                    with open(full(o["path"]), "rb") as f:
                        got = f.read()
                    want_equal(got, bytes(models[o["path"]]), f"{o['path']} read whole through a new open")
                elif op == "close":
                    os.close(fds.pop(o["fd"]))
            except OSError as e:
                bad(f"{op} {json.dumps({k: v for k, v in o.items() if k != 'op'})} failed: {os.strerror(e.errno)} (errno {e.errno})")
                break
    finally:
        for fd in fds.values():
            try:
                os.close(fd)
            except OSError:
                pass
        for rel in made:
            try:
                os.unlink(full(rel))
            except OSError:
                pass
    if problems:
        print(f"{len(problems)} problem(s): the server does not behave as a local filesystem would here")
        return 1
    print("OK: nothing wrong")
    return 0


if __name__ == "__main__":
    sys.exit(main())
`;

/** The script's text: the operations and the failure are embedded as JSON. */
export function renderRepro(info: ReproInfo, ops: ReproOp[]): string {
  const head = `#!/usr/bin/env python3\n# fusecert standalone reproducer for ${info.id} (${info.title}).\n# usage: python3 ${safeName(info.id)}.py MOUNTPOINT\n# Replays what the clause did on a mount of the server and prints what is wrong; no fusecert needed.\n`;
  return head + PY.replace('__OPS__', JSON.stringify(JSON.stringify(ops))).replace('__INFO__', JSON.stringify(JSON.stringify(info)));
}

export const safeName = (id: string) =>
  id
    .replace('[', '.')
    .replace(']', '')
    .replace(/[^A-Za-z0-9@._+-]/g, '_');

/** Write the script into DIR/repro/ and return its path. */
export function writeRepro(outDir: string, info: ReproInfo, ops: ReproOp[]): string {
  const dir = path.join(outDir, 'repro');
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${safeName(info.id)}.py`);
  writeFileSync(file, renderRepro(info, ops), { mode: 0o755 });
  return file;
}
