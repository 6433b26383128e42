#!/usr/bin/env bash
# Certifies ptfs and the real passthrough servers whose binaries are present, in one run, so the
# comparison page shows them side by side (reports/real/compare.html). A server whose binary is
# not named by its environment variable is skipped with the reason; ptfs always runs.
#   PASSTHROUGH_HP    libfuse example/passthrough_hp (servers/passthrough_hp/README.md)
#   GO_FUSE_LOOPBACK  go-fuse example/loopback       (servers/go-fuse-loopback/README.md)
#   MERGERFS          mergerfs >= 2.40               (servers/mergerfs/README.md)
# Extra arguments go to `fusecert run` (e.g. --family BKG,ATT). Exit code: fusecert's.
set -euo pipefail
cd "$(dirname "$0")/.."
servers=(--server servers/ptfs/manifest.json)
check() { # VAR NAME: add the server when $VAR names an executable file
  local var=$1 name=$2 path=${!1:-}
  if [ -z "$path" ]; then
    echo "certify-real: skipping $name: $var is not set (build it as servers/$name/README.md says, then export $var=/path/to/binary)"
  elif [ ! -x "$path" ]; then
    echo "certify-real: skipping $name: $var=$path is not an executable file"
  else
    servers+=(--server "servers/$name/manifest.json")
  fi
}
check PASSTHROUGH_HP passthrough_hp
check GO_FUSE_LOOPBACK go-fuse-loopback
check MERGERFS mergerfs
make -s -C servers/ptfs
exec node bin/fusecert.mjs run "${servers[@]}" --out reports/real "$@"
