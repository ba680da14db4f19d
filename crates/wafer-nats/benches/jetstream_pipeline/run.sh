#!/usr/bin/env bash
# The JetStream pipeline benchmark of BENCHMARKS.md ("End to end through
# JetStream"): messages from stream IN through a Benthos-ABI processor
# (our louder guest) to stream OUT with `wafer run` (input and output
# nats_jetstream), with one and with two wafer processes sharing one
# durable consumer, against a plain async-nats relay with no processing
# (examples/plain_relay.rs), all on one local nats-server (Debian's
# `nats-server`, file storage in a temporary directory).
#
# Each round, the driver (examples/stream_load.rs) makes IN and OUT afresh
# and fills IN with N messages of 100 bytes (default 100000); then the
# consumers start, and it times them from the first message delivered to
# the last one acknowledged in IN (after its publish to OUT was), and
# prints messages/s. ROUNDS rounds (default 5), the relay, one wafer and
# two wafers taking turns, so that a neighbour's load on a shared machine
# hits them alike. Prints every round, then the medians. EXTRA: more
# fields for wafer's input (YAML lines, indented by 4).
#
#   crates/wafer-nats/benches/jetstream_pipeline/run.sh
set -euo pipefail
cd "$(dirname "$0")/../../../.."
N=${N:-100000}
ROUNDS=${ROUNDS:-5}
EXTRA=${EXTRA:-}
cargo build --release -q -p wafer-cli -p wafer-guests -p wafer-nats --example plain_relay --example stream_load
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

source crates/wafer-http/benches/lib.sh
source crates/wafer-nats/benches/lib.sh

start_nats -js -sd "$work/store"

# The newest build of the guest (guests/artifacts builds every guest).
# shellcheck disable=SC2046
cp "$(ls -t $(find target/release/build -path '*wasm32-unknown-unknown/release/examples/louder.wasm') | head -1)" "$work/louder.wasm"
cat >"$work/pipeline.yaml" <<YAML
input:
  nats_jetstream:
    urls: ["$url"]
    stream: IN
    durable: wafer
$EXTRA
pipeline:
  threads: 1
  processors:
    - wasm: {module_path: "$work/louder.wasm"}
output:
  nats_jetstream:
    urls: ["$url"]
    subject: out.done
YAML

# One round of $1 (relay or wafer), $2 processes of it: the driver fills
# IN, the processes start at once; the driver's "messages/s seconds" is
# left in $work/rate. (Not run in a subshell: its processes stay jobs of
# this shell, which the trap ends.)
round() { # kind count
  local durable=$1 pids=() i
  target/release/examples/stream_load "$url" "$N" "$durable" >"$work/rate" 2>"$work/load.log" &
  local driver=$!
  ready "$work/load.log" loaded
  for i in $(seq "$2"); do
    if [ "$1" = relay ]; then
      target/release/examples/plain_relay "$url" IN relay out.done 2>"$work/$1.$i.log" &
    else
      target/release/wafer run "$work/pipeline.yaml" 2>"$work/$1.$i.log" &
    fi
    pids+=($!)
  done
  for i in $(seq "$2"); do
    if [ "$1" = relay ]; then ready "$work/$1.$i.log" ready; else ready "$work/$1.$i.log" "Consuming JetStream stream IN"; fi
  done
  wait "$driver"
  # Everything is acknowledged: nothing is lost by ending them so.
  kill "${pids[@]}"
  wait "${pids[@]}" || true
}

for round in $(seq "$ROUNDS"); do
  for run in "relay 1" "wafer 1" "wafer 2"; do
    read -r kind count <<<"$run"
    round "$kind" "$count"
    figures=$(cat "$work/rate")
    echo "round $round $kind×$count: $figures (messages/s seconds)"
    echo "$figures" >>"$work/$kind.$count"
  done
done
relay=$(cut -d' ' -f1 "$work/relay.1" | median)
echo "median of rounds: relay $relay messages/s"
for count in 1 2; do
  wafer=$(cut -d' ' -f1 "$work/wafer.$count" | median)
  echo "median of rounds: wafer×$count $wafer messages/s, $((100 * wafer / relay))% of the relay"
done
