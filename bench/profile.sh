#!/usr/bin/env bash
# npm run bench:profile -- [wsload arguments]: runs the compiled echo server
# (examples/echo.ts) under `node --cpu-prof`, pinned to one core with the C
# load generator on the other (as in `npm run bench`), then prints where the
# server's time went (bench/profile-summary.ts) and the path of the profile,
# which opens as a flame graph in Chrome DevTools (Performance, "Load
# profile") or in speedscope.
#
#   npm run bench:profile                                  # 64 connections, 1 KiB echo
#   npm run bench:profile -- -m connect -c 64              # handshakes
#   DURATION=10 npm run bench:profile -- -m echo -c 1 -s 1m
#
# Profiles go to bench/profiles/<date-time>/ (not committed). wsload is built
# from ../shared/bench/wsload.c into $WSBENCH_DIR/build (as run-peers.sh
# does) when it is not there yet. DIRECT_READS=0 profiles the 'data' events
# mode; NODE_FLAGS adds flags for the server (for example --trace-gc).
# SERVER=dist/bench/node-floor.js profiles the Node floor instead (give its
# echo rows --no-verify: it leaves payloads masked).
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${WSROUTES_SHARED_BENCH:-../shared/bench}
WORK=${WSBENCH_DIR:-${TMPDIR:-/tmp}/wsbench}
PORT=${PORT:-19391}
DURATION=${DURATION:-5}
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(-m echo -c 64 -s 1k)

mkdir -p "$WORK/build"
wsload="$WORK/build/wsload"
if [ ! -x "$wsload" ]; then
  [ -f "$SHARED/wsload.c" ] || { echo "bench:profile: $SHARED/wsload.c not found" >&2; exit 2; }
  gcc -O2 -Wall -o "$wsload" "$SHARED/wsload.c"
fi
npm run build >/dev/null
out="bench/profiles/$(date +%Y-%m-%d-%H%M%S)"
mkdir -p "$out"

# Server on the last core, load generator on the first, where there are two.
server_cpu=() client_cpu=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
  server_cpu=(taskset -c "$(( $(nproc) - 1 ))") client_cpu=(taskset -c 0)
fi
started_ms=$(date +%s%3N)
# shellcheck disable=SC2086
PORT=$PORT "${server_cpu[@]}" node ${NODE_FLAGS:-} --cpu-prof --cpu-prof-dir="$out" "${SERVER:-dist/examples/echo.js}" > "$out/server.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  kill -0 "$server" 2>/dev/null || { cat "$out/server.log" >&2; exit 1; }
  sleep 0.1
done
# The summary counts only the measured seconds: the profile starts with the
# process, and loading the modules and the warm-up second are no part of them.
load_from_ms=$(( $(date +%s%3N) - started_ms + 1000 ))
"${client_cpu[@]}" "$wsload" -p "$PORT" --server-pid "$server" -d "$DURATION" -w 1 "${args[@]}" | grep '^RESULT' || true
# SIGTERM closes the app and exits, which writes the profile.
kill -TERM "$server"
wait "$server" || true
trap - EXIT
profile=$(ls "$out"/*.cpuprofile 2>/dev/null | head -n 1)
[ -n "$profile" ] || { echo "bench:profile: no profile written (see $out/server.log)" >&2; exit 1; }
echo
node dist/bench/profile-summary.js "$profile" "${TOP:-30}" --from-ms "$load_from_ms" --to-ms "$(( load_from_ms + DURATION * 1000 ))"
echo
echo "profile: $profile"
