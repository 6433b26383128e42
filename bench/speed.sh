#!/usr/bin/env bash
# The four speed figures of fusecert, side by side, in one run (issue 13's targets in brackets):
#   certify   wall time of `npm run certify` (ptfs, every family)                      [<= 20 s]
#   npm test  wall time of `npm test` (pretest included)                               [<= 300 s]
#   four      ptfs + passthrough_hp + go-fuse + mergerfs in one run (servers/certify-real.sh),
#             when PASSTHROUGH_HP, GO_FUSE_LOOPBACK and MERGERFS are set; else "skipped"  [<= 90 s]
#   evidence  bench/evidence-overhead.ts ratio (median of 31 paired rounds, with / without a session) [<= 1.10]
# Figures, not assertions: it prints what it measured and exits 0 unless a step could not run.
# SKIP_TEST=1 leaves out npm test (the longest step). Needs root, FUSE and tracefs.
set -uo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d /tmp/fusecert-speed.XXXXXX)
trap 'rm -rf "$out"' EXIT
secs() { local t0=$1; echo "$(( ($(date +%s%N) - t0) / 1000000 ))" | awk '{printf "%.1f", $1/1000}'; }
others() { # other fusecert runs on the machine make every figure slower: say so
  local n
  n=$(ps -eo args= | grep -c '[b]in/fusecert.mjs run')
  [ "$n" -gt 0 ] && echo " (while $n other fusecert run(s) were active)"
}

t0=$(date +%s%N)
npm run -s certify -- --out "$out/certify" --quiet >"$out/certify.log" 2>&1
rc=$?
certify="$(secs "$t0") s (exit $rc)$(others)"

if [ "${SKIP_TEST:-0}" = 1 ]; then
  tests="skipped (SKIP_TEST=1)"
else
  t0=$(date +%s%N)
  npm test >"$out/test.log" 2>&1
  rc=$?
  tests="$(secs "$t0") s (exit $rc; vitest: $(sed 's/\x1b\[[0-9;]*m//g' "$out/test.log" | grep -o 'Duration  *[0-9.]*s' | head -1 | sed 's/Duration  *//'))$(others)"
fi

if [ -n "${PASSTHROUGH_HP:-}" ] && [ -n "${GO_FUSE_LOOPBACK:-}" ] && [ -n "${MERGERFS:-}" ]; then
  t0=$(date +%s%N)
  bash servers/certify-real.sh --out "$out/real" --quiet >"$out/real.log" 2>&1
  rc=$?
  four="$(secs "$t0") s (exit $rc)$(others)"
else
  four="skipped: set PASSTHROUGH_HP, GO_FUSE_LOOPBACK and MERGERFS (servers/*/README.md)"
fi

evidence=$(npx tsx bench/evidence-overhead.ts 2>&1 | sed -n 's/^ratio: //p')
[ -n "$evidence" ] || evidence="could not run (root and tracefs needed)"

printf '%-10s %s\n' "certify" "$certify" "npm test" "$tests" "four" "$four" "evidence" "$evidence$(others)"
