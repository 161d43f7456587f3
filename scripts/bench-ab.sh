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
#   BINARY:STORE=postgres://HOST/DB?… serves examples/bench.yaml on that PostgreSQL database,
#   dropped and created afresh for each run (DB is a scratch database: never name a real one).
#   BENCH_CONFIG=FILE and BENCH_URL=http://127.0.0.1:PORT (its listen address) in the environment
#   replace examples/bench.yaml and its address for every variant (e.g. when 8080 is taken).
set -euo pipefail
[ $# -ge 3 ] || { sed -n '2,10p' "$0"; exit 2; }
scenario=$1 rounds=$2
shift 2
config=${BENCH_CONFIG:-"$(cd "$(dirname "$0")/.." && pwd)/examples/bench.yaml"}
url=${BENCH_URL:-http://127.0.0.1:8080}
for round in $(seq 1 "$rounds"); do
  for variant in "$@"; do
    bin=${variant%%:*} env=()
    [ "$bin" != "$variant" ] && env=("${variant#*:}")
    cfg=$config store=()
    if [[ ${env[0]:-} == CONFIG=* ]]; then cfg=${env[0]#CONFIG=} env=(); fi
    if [[ ${env[0]:-} == STORE=* ]]; then
      dsn=${env[0]#STORE=} env=()
      db=${dsn##*/} db=${db%%\?*}
      admin="${dsn%/"$db"*}/postgres${dsn#*/"$db"}"
      dropdb --if-exists --force --maintenance-db="$admin" "$db"
      createdb --maintenance-db="$admin" "$db"
      store=(--store "$dsn")
    fi
    rm -rf /tmp/leasehold-bench
    env -u GOGC "${env[@]}" "$bin" bench serve --pprof 127.0.0.1:0 --config "$cfg" "${store[@]}" >/tmp/leasehold-bench-ab.log 2>&1 &
    pid=$!
    # A run that fails (set -e) must not leave its server holding the port for the next.
    trap 'kill "$pid" 2>/dev/null || true' EXIT
    sleep 1.5
    "$bin" bench --scenario "$scenario" --duration 2s --connections 64 --url "$url" >/dev/null 2>&1
    t0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    out=$("$bin" bench --scenario "$scenario" --duration 6s --connections 64 --url "$url" 2>&1)
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
