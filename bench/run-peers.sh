#!/usr/bin/env bash
# npm run bench: measures examples/echo.ts, compiled as a user would run it in
# production, next to the peer servers (cecho, ws, ws+bufferutil,
# @fastify/websocket, uWebSockets.js) with ../shared/bench/run-peers.sh, and
# writes the report to bench/results/<date>.md, ending with the targets
# section of bench/targets.ts (each target met or not, the rows where a Node
# peer is ahead, what limits each target not met). Extra arguments go to
# run-peers.sh (for example --reps 1 --duration 2 for a smoke run). The
# compression section is skipped: permessage-deflate is not implemented yet.
# DIRECT_READS=0 measures the echo server with directReads: false ('data'
# events) instead (the column is then wsroutes-data-events and the report
# <date>-data-events.md).
# NODE_FLAGS="--flag ..." runs every Node server of the run, the peers and
# ours alike, with those flags: a `node` first on PATH adds them (see
# bench/node-with-flags.sh), and the report is <date>-flags.md.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${WSROUTES_SHARED_BENCH:-../shared/bench}
[ -x "$SHARED/run-peers.sh" ] || { echo "bench: $SHARED/run-peers.sh not found" >&2; exit 2; }
npm run build >/dev/null
mkdir -p bench/results
name=wsroutes suffix=""
if [ "${DIRECT_READS:-}" = 0 ]; then name=wsroutes-data-events suffix=-data-events; fi
if [ -n "${NODE_FLAGS:-}" ]; then
  shim=$(mktemp -d)
  trap 'rm -rf "$shim"' EXIT
  bash bench/node-with-flags.sh "$shim" $NODE_FLAGS
  export PATH="$shim:$PATH"
  suffix=$suffix-flags
fi
out="bench/results/$(date +%Y-%m-%d)$suffix.md"
[ -e "$out" ] && out="bench/results/$(date +%Y-%m-%d-%H%M)$suffix.md"
# The shared folder is read-only material: peers are installed and programs built in a work folder.
export WSBENCH_DIR=${WSBENCH_DIR:-${TMPDIR:-/tmp}/wsbench}
"$SHARED/run-peers.sh" \
  --candidate "exec node $PWD/dist/examples/echo.js" --candidate-port 19390 --candidate-name "$name" \
  --skip-deflate \
  --out "$PWD/$out" "$@"
# An --out among the extra arguments wins over ours, as it does in run-peers.sh.
prev=""; for arg in "$@"; do [ "$prev" = --out ] && out=$arg; prev=$arg; done
if [ -n "${NODE_FLAGS:-}" ] && [ -f "$out" ]; then
  printf '\nEvery Node server of this run (the peers and %s) ran with `node %s`.\n' "$name" "$NODE_FLAGS" >> "$out"
fi
# The targets section: each target met or not, the rows where a Node peer
# is ahead, and what limits each target not met.
if [ -f "$out" ] && section=$(node dist/bench/targets.js "$out"); then
  printf '\n%s\n' "$section" >> "$out"
fi
echo "bench: report in $out"
