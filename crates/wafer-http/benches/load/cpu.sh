#!/usr/bin/env bash
# CPU time each server spends per request (user + system, from /proc), for
# the plain axum handler and `wafer run examples/http`'s /add, under wrk at
# concurrency 64 for DURATION seconds (default 5), ROUNDS times (default 2).
# Less swayed by a neighbour's load than requests/s: it counts the
# server's own work, kernel included.
#
#   crates/wafer-http/benches/load/cpu.sh                       # access log on
#   WAFER_LOG="info,wafer::access=off" crates/wafer-http/benches/load/cpu.sh
set -euo pipefail
cd "$(dirname "$0")/../../../.."
DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-2}
here=crates/wafer-http/benches/load
cargo build --release -q -p wafer-cli -p wafer-http --example plain_add
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/http"
cp examples/http/* "$work/http/"
sed -i 's/127.0.0.1:8080/127.0.0.1:0/' "$work/http/_index.yaml"

# cpu_per_request NAME LOG COMMAND...: starts the server, loads it, prints.
cpu_per_request() {
  local name=$1 log=$2
  shift 2
  "$@" 2>"$log" &
  local pid=$!
  for _ in $(seq 600); do grep -q "Listening on http://" "$log" && break; sleep 0.1; done
  local url ticks before after requests
  url=$(grep -o "http://[0-9.:]*" "$log" | head -1)/add
  ticks=$(getconf CLK_TCK)
  before=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  requests=$(wrk -t2 -c64 -d"${DURATION}s" -s "$here/post.lua" "$url" | awk '/requests in/ {print $1}')
  after=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  awk -v n="$requests" -v t=$((after - before)) -v hz="$ticks" -v name="$name" \
    'BEGIN {printf "%-6s %8d requests, %.1f µs of CPU per request\n", name, n, t / hz * 1e6 / n}'
}

for _ in $(seq "$ROUNDS"); do
  cpu_per_request plain "$work/plain.log" target/release/examples/plain_add 127.0.0.1:0
  cpu_per_request wafer "$work/wafer.log" target/release/wafer run "$work/http"
done
