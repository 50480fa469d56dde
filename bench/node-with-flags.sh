#!/usr/bin/env bash
# bench/node-with-flags.sh DIR FLAG...: writes DIR/node, which runs the node
# found on PATH now with FLAG... ahead of its own arguments. With DIR first on
# PATH, every server a benchmark starts with plain `node` (the peers of
# run-peers.sh and ours) gets the same flags, so a comparison stays fair.
set -euo pipefail
dir=$1; shift
[ $# -gt 0 ] || { echo "node-with-flags: no flags given" >&2; exit 2; }
real=$(command -v node) || { echo "node-with-flags: node is not on PATH" >&2; exit 2; }
{
  echo '#!/bin/sh'
  printf 'exec %q' "$real"
  printf ' %q' "$@"
  echo ' "$@"'
} > "$dir/node"
chmod +x "$dir/node"
