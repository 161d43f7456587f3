#!/usr/bin/env bash
# A/B of server CPU per operation (BENCHMARKS.md, fourth round). For each round and each
# variant: a fresh store, `leasehold serve --config examples/bench.yaml`, 2 s of warm-up, then
# 6 s of SCENARIO at 64 connections; prints ok/s, p99, the server's CPU (utime + stime from
# /proc) per operation answered, and its RSS. Variants alternate, so load on the machine
# falls on all of them alike.
#
#   scripts/bench-ab.sh SCENARIO ROUNDS VARIANT...
#   VARIANT = BINARY or BINARY:ENV=VALUE (e.g. /tmp/lh:GOGC=100); the binary also drives the load.
#   BINARY:CONFIG=FILE serves FILE instead of examples/bench.yaml (its store must be the same path).
set -euo pipefail
[ $# -ge 3 ] || { sed -n '2,10p' "$0"; exit 2; }
scenario=$1 rounds=$2
shift 2
config="$(cd "$(dirname "$0")/.." && pwd)/examples/bench.yaml"
for round in $(seq 1 "$rounds"); do
  for variant in "$@"; do
    bin=${variant%%:*} env=()
    [ "$bin" != "$variant" ] && env=("${variant#*:}")
    cfg=$config
    if [[ ${env[0]:-} == CONFIG=* ]]; then cfg=${env[0]#CONFIG=} env=(); fi
    rm -rf /tmp/leasehold-bench
    env -u GOGC "${env[@]}" "$bin" serve --config "$cfg" >/tmp/leasehold-bench-ab.log 2>&1 &
    pid=$!
    # A run that fails (set -e) must not leave its server holding the port for the next.
    trap 'kill "$pid" 2>/dev/null || true' EXIT
    sleep 1.5
    "$bin" bench --scenario "$scenario" --duration 2s --connections 64 >/dev/null 2>&1
    t0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    out=$("$bin" bench --scenario "$scenario" --duration 6s --connections 64 2>&1)
    t1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    rss=$(awk '/VmRSS/ {print int($2 / 1024)}' "/proc/$pid/status")
    kill "$pid"; wait "$pid" 2>/dev/null || true
    trap - EXIT
    ops=$(sed -n 's/.*requests *\([0-9]*\) .*/\1/p' <<<"$out" | head -1)
    okps=$(sed -n 's/.*(\([0-9]*\) ok\/s).*/\1/p' <<<"$out")
    p99=$(sed -n 's/.* p99 \([0-9.]*\).*/\1/p' <<<"$out")
    tick=$(getconf CLK_TCK)
    echo "round $round $variant: $okps ok/s, p99 $p99 ms, server $(( (t1 - t0) * 1000000 / tick / ops )) µs/op, RSS $rss MB"
  done
done
