#!/usr/bin/env bash
# A/B of server CPU per operation (BENCHMARKS.md, fourth round). For each round and each
# variant: a fresh store, `leasehold serve --config examples/bench.yaml`, 2 s of warm-up, then
# 6 s of SCENARIO at 64 connections; prints ok/s, p99, the server's CPU (utime + stime from
# /proc) per operation answered, and its RSS; then the load generator's CPU per operation and,
# on a PostgreSQL store, the CPU of this machine's postgres processes per operation (the
# three add up to what an operation costs the machine: BENCHMARKS.md, "Where the floor is").
# Variants alternate, so load on the machine falls on all of them alike.
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
# CPU ticks of this machine's postgres processes (those that exit meanwhile are missed: the
# server's pooled connections live through a run).
dbcpu() {
  local sum=0 p
  for p in $(pgrep -x postgres); do sum=$((sum + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done
  echo "$sum"
}
# CPU microseconds of this shell's finished children, from bash's times (user and system),
# which must run in this shell itself, not in a $(…) subshell that has no children yet.
timesf=$(mktemp)
trap 'rm -f "$timesf" "$timesf.1"' EXIT
childcpu() {
  sed -n 2p "$timesf" | awk '{
    t = 0
    for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); t += a[1] * 60 + a[2] }
    printf "%d\n", t * 1000000
  }'
}
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
    trap 'kill "$pid" 2>/dev/null || true; rm -f "$timesf" "$timesf.1"' EXIT
    sleep 1.5
    "$bin" bench --scenario "$scenario" --duration 2s --connections 64 --url "$url" >/dev/null 2>&1
    t0=$(awk '{print $14 + $15}' "/proc/$pid/stat") db0=$(dbcpu)
    times >"$timesf"
    out=$("$bin" bench --scenario "$scenario" --duration 6s --connections 64 --url "$url" 2>&1)
    times >"$timesf.1"
    t1=$(awk '{print $14 + $15}' "/proc/$pid/stat") db1=$(dbcpu)
    lg0=$(childcpu) && mv "$timesf.1" "$timesf" && lg1=$(childcpu)
    rss=$(awk '/VmRSS/ {print int($2 / 1024)}' "/proc/$pid/status")
    kill "$pid"; wait "$pid" 2>/dev/null || true
    trap 'rm -f "$timesf" "$timesf.1"' EXIT
    ops=$(sed -n 's/.*requests *\([0-9]*\) .*/\1/p' <<<"$out" | head -1)
    okps=$(sed -n 's/.*(\([0-9]*\) ok\/s).*/\1/p' <<<"$out")
    p99=$(sed -n 's/.* p99 \([0-9.]*\).*/\1/p' <<<"$out")
    tick=$(getconf CLK_TCK)
    line="round $round $variant: $okps ok/s, p99 $p99 ms, server $(( (t1 - t0) * 1000000 / tick / ops )) µs/op, RSS $rss MB"
    line+=", load generator $(( (lg1 - lg0) / ops )) µs/op"
    [ ${#store[@]} -gt 0 ] && line+=", postgres $(( (db1 - db0) * 1000000 / tick / ops )) µs/op"
    echo "$line"
  done
done
