#!/usr/bin/env bash
# A/B of the gateway scenario (BENCHMARKS.md, "Gateway (issue 13)"). For each round and each
# variant: a fresh store, `leasehold serve` on examples/bench.yaml moved to 127.0.0.1:18080 (so
# that it cannot collide with another bench server on 8080), then `leasehold bench --compare
# --scenarios gateway` (baseline, gateway, baseline; 64 connections, 5 s each); prints the
# gateway's ok/s and ratio to the same run's baselines, and the server's CPU (utime + stime
# from /proc) per gateway request (leasehold_gateway_requests_total), which load on the other
# core barely moves. Variants alternate, so load on the machine falls on all of them alike.
#
#   scripts/bench-ab-gateway.sh ROUNDS BINARY...
#   The first binary drives the load for every variant (LOAD=BINARY to choose another).
set -euo pipefail
[ $# -ge 2 ] || { sed -n '2,11p' "$0"; exit 2; }
rounds=$1
shift
load=${LOAD:-$1}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
sed -e 's#127.0.0.1:8080#127.0.0.1:18080#g' -e "s#/tmp/leasehold-bench#$dir/store#g" \
  "$(cd "$(dirname "$0")/.." && pwd)/examples/bench.yaml" >"$dir/bench.yaml"
token=bench-admin-token-not-for-production
tick=$(getconf CLK_TCK)
count() {
  curl -s -H "Authorization: Bearer $token" http://127.0.0.1:18080/metrics |
    awk '/^leasehold_gateway_requests_total/ {s += $2} END {print s + 0}'
}
for round in $(seq 1 "$rounds"); do
  for bin in "$@"; do
    rm -rf "$dir/store"
    "$bin" serve --config "$dir/bench.yaml" >"$dir/serve.log" 2>&1 &
    pid=$!
    sleep 1.5
    t0=$(awk '{print $14 + $15}' "/proc/$pid/stat") c0=$(count)
    out=$("$load" bench --compare --scenarios gateway --url http://127.0.0.1:18080 --admin-token $token \
      --connections 64 --duration 5s 2>&1)
    t1=$(awk '{print $14 + $15}' "/proc/$pid/stat") c1=$(count)
    kill "$pid"; wait "$pid" 2>/dev/null || true
    gw=$(awk '$1 == "gateway" && $2 ~ /^[0-9]+$/ {print $2 " ok/s, ratio " $3 ", p99 " $6 " ms"}' <<<"$out")
    base=$(awk '/baseline \(mean\)/ {print $3}' <<<"$out")
    echo "round $round $bin: $gw (baselines $base ok/s); server $(( (t1 - t0) * 1000000 / tick / (c1 - c0) )) µs/req ($((c1 - c0)) requests)"
  done
done
