#!/bin/bash
# Sequential read/write throughput of a 256 MiB file: tmpfs directly, ptfs with
# passthrough, ptfs without.  One run; prints MB/s and ratios to native.
# Needs root (mount).  Everything it creates lives in one temp dir, removed on exit.
set -u
here=$(cd "$(dirname "$0")" && pwd)
ptfs=${PTFS:-$here/../servers/ptfs/ptfs}
size_mb=${SIZE_MB:-256}
[ -x "$ptfs" ] || make -s -C "$here/../servers/ptfs" || { echo "cannot build ptfs" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "ptfs-throughput: needs root" >&2; exit 2; }

work=$(mktemp -d /tmp/ptfs-bench.XXXXXX)
pid=""
cleanup() {
	[ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	umount "$work/mnt" 2>/dev/null
	umount "$work/src" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT INT TERM
mkdir "$work/src" "$work/mnt"
mount -t tmpfs -o size=$((size_mb * 2 + 64))m none "$work/src" || exit 2

# dd prints "... copied, 0.12 s, 2.2 GB/s"; compute MB/s ourselves from bytes and seconds.
rate() { # file-to-read-or-write mode
	local out secs
	if [ "$2" = write ]; then
		out=$(dd if=/dev/zero of="$1" bs=1M count="$size_mb" conv=fsync 2>&1 >/dev/null | tail -1)
	else
		out=$(dd if="$1" of=/dev/null bs=1M 2>&1 >/dev/null | tail -1)
	fi
	secs=$(echo "$out" | sed -E 's/.* copied, ([0-9.e+-]+) s.*/\1/')
	awk -v mb="$size_mb" -v s="$secs" 'BEGIN { printf "%.0f", (s > 0 ? mb * 1.048576 / s : 0) }'
}

best() { sort -n | tail -1; }
# Writes: best of 3, each into a fresh file. Reads: best of 3 of ONE file written once through the
# mount, read as the backing file and through the mount, so both paths read the same pages (two
# tmpfs files can read up to 2x apart by the same path, depending on the memory they were given).
writes() { for _ in 1 2 3; do rm -f "$1"; rate "$1" write; echo; done | best; rm -f "$1"; }
reads() { for _ in $(seq "${2:-3}"); do rate "$1" read; echo; done | best; }

start_ptfs() {
	"$ptfs" --source "$work/src" --mountpoint "$work/mnt" "$@" 2>"$work/ptfs.err" &
	pid=$!
	for _ in $(seq 100); do
		grep -q " $work/mnt " /proc/self/mountinfo && return 0
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	echo "ptfs did not mount:" >&2; cat "$work/ptfs.err" >&2; exit 1
}

stop_ptfs() {
	kill -TERM "$pid"; wait "$pid"; pid=""
}

nat_w=$(writes "$work/src/w.dat")
start_ptfs
pt_w=$(writes "$work/mnt/w.dat")
dd if=/dev/zero of="$work/mnt/r.dat" bs=1M count="$size_mb" conv=fsync status=none
nat_r=$(reads "$work/src/r.dat")
pt_r=$(reads "$work/mnt/r.dat")
stop_ptfs
start_ptfs --no-passthrough
np_w=$(writes "$work/mnt/w.dat")
np_r=$(reads "$work/mnt/r.dat" 1) # once: a second read would come from the FUSE page cache
stop_ptfs

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
printf "%-16s %10s %10s\n" "" "write MB/s" "read MB/s"
printf "%-16s %10s %10s\n" "tmpfs (native)" "$nat_w" "$nat_r"
printf "%-16s %10s %10s\n" "ptfs passthrough" "$pt_w" "$pt_r"
printf "%-16s %10s %10s\n" "ptfs no-pt" "$np_w" "$np_r"
echo "passthrough/native: write $(ratio "$pt_w" "$nat_w") read $(ratio "$pt_r" "$nat_r")"
echo "nopassthrough/native: write $(ratio "$np_w" "$nat_w") read $(ratio "$np_r" "$nat_r")"
