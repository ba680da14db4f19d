#!/usr/bin/env bash
# Reloads under HTTP load, for BENCHMARKS.md: wrk keeps `POST /add` of
# `wafer run examples/http` busy at concurrency 64 for DURATION seconds
# (default 10) while the run is reloaded RELOADS times (default 5; each
# reload replaces add.wat with a module that answers the same), against a
# run of the same length with no reload. Prints wrk's figures for both
# (requests/s, p50 and p99 in µs, and any non-2xx answer or socket error),
# and how long each reload took from SIGHUP to its "Reloaded." line.
#
#   crates/wafer-http/benches/reload/run.sh
set -euo pipefail
cd "$(dirname "$0")/../../../.."
DURATION=${DURATION:-10}
RELOADS=${RELOADS:-5}
cargo build --release -q -p wafer-cli
wafer=$PWD/target/release/wafer
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

source crates/wafer-http/benches/lib.sh

mkdir -p "$work/http"
cp examples/http/* "$work/http/"
sed -i 's/127.0.0.1:8080/127.0.0.1:0/' "$work/http/_index.yaml"
"$wafer" run "$work/http" 2>"$work/wafer.log" &
pid=$!
endpoint=$(listening "$work/wafer.log" "Listening on")/add

echo "no reload:     $(BODY="[2, 40]" load 64 "$endpoint")  (req/s, p50 µs, p99 µs)"

# The same sum from another module each time (a comment alone would not
# do: a .wat is compared as the Wasm it encodes).
variant() { # n
  printf '(module (func (export "add") (param i32 i32) (result i32)\n  i32.const %s\n  drop\n  local.get 0\n  local.get 1\n  i32.add))\n' "$1"
}
BODY="[2, 40]" load 64 "$endpoint" >"$work/reloading" &
wrk_pid=$!
for n in $(seq "$RELOADS"); do
  sleep "$(awk -v d="$DURATION" -v r="$RELOADS" 'BEGIN {print d / (r + 1)}')"
  variant "$n" >"$work/http/add.wat"
  started=$(date +%s%N)
  kill -HUP "$pid"
  until grep -q "Reloaded. generation=$((n + 1))" "$work/wafer.log"; do sleep 0.005; done
  echo "reload $n: $(( ($(date +%s%N) - started) / 1000000 )) ms from SIGHUP to Reloaded."
done
wait "$wrk_pid"
echo "with $RELOADS reloads: $(cat "$work/reloading")  (req/s, p50 µs, p99 µs)"
grep -c "Reloaded." "$work/wafer.log" | sed 's/^/reloads logged: /'
