#!/bin/bash
# The cost of run's pressure check (issue 23): `run -- true` by the agent before the check and by the agent with it,
# interleaved in the same run (one of each per round, so that the machine's drift hits both), against the engine the
# agent finds (below its marks: the check looks and collects nothing). Wall time from fork to reap, by date +%s%N.
# Usage: bench_pressure.sh BEFORE_BINARY AFTER_BINARY [ROUNDS]   (root; a temp state dir of its own)
set -euo pipefail
before=$1 after=$2 rounds=${3:-100}
state=$(mktemp -d /var/tmp/bench-pressure-XXXXXX)
chmod 700 "$state"
trap 'rm -rf "$state"' EXIT
one() { # $1: binary; prints the wall time in microseconds
  local t0 t1
  t0=$(date +%s%N)
  "$1" --state-dir "$state" run -- true
  t1=$(date +%s%N)
  echo $(((t1 - t0) / 1000))
}
for bin in "$before" "$after"; do one "$bin" >/dev/null; done # warm the page cache and the engine's connection
: >"$state/b" && : >"$state/a"
for ((i = 0; i < rounds; i++)); do
  one "$before" >>"$state/b"
  one "$after" >>"$state/a"
done
median() { sort -n "$1" | awk '{v[NR] = $1} END {m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.2f", m / 1000}'; }
mb=$(median "$state/b") ma=$(median "$state/a")
echo "rounds: $rounds"
echo "run -- true without the check: median $mb ms"
echo "run -- true with the check:    median $ma ms"
awk -v a="$ma" -v b="$mb" 'BEGIN {printf "the check adds: %.2f ms\n", a - b}'
