#!/usr/bin/env bash
# The request-reply benchmark of BENCHMARKS.md ("Functions on NATS
# subjects"): the WAT add function served by `wafer run` on a
# nats.endpoint, against a plain async-nats responder adding two numbers
# (examples/plain_responder.rs), both on one local nats-server (Debian's
# `nats-server`). The driver (examples/request_load.rs) sends N requests
# (default 100000), C at a time (default 1 and 64), and prints calls/s and
# p99; ROUNDS rounds (default 5), the two responders taking turns so that
# a neighbour's load on a shared machine hits them alike. Prints every
# round, then the medians.
#
#   crates/wafer-nats/benches/request_reply/run.sh
set -euo pipefail
cd "$(dirname "$0")/../../../.."
N=${N:-100000}
ROUNDS=${ROUNDS:-5}
CONCURRENCY=${CONCURRENCY:-"1 64"}
cargo build --release -q -p wafer-cli -p wafer-nats --example plain_responder --example request_load
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

source crates/wafer-http/benches/lib.sh
source crates/wafer-nats/benches/lib.sh

start_nats

mkdir "$work/reg"
cat >"$work/reg/_index.yaml" <<YAML
version: "1.0"
namespace: bench
entries:
  - name: add
    kind: function.wat
    source: '(module (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))'
    wit: "add: func(a: s32, b: s32) -> s32;"
    method: add
  - name: add-on-nats
    kind: nats.endpoint
    urls: $url
    subject: bench.wafer
    func: add
YAML
target/release/wafer run "$work/reg" 2>"$work/wafer.log" &
ready "$work/wafer.log" "Serving function"
target/release/examples/plain_responder "$url" bench.plain 2>"$work/plain.log" &
ready "$work/plain.log" ready

load_nats() { target/release/examples/request_load "$url" "$1" "$N" "$2"; }
for subject in bench.wafer bench.plain; do load_nats "$subject" 16 >/dev/null; done
for round in $(seq "$ROUNDS"); do
  for c in $CONCURRENCY; do
    for name in wafer plain; do
      figures=$(load_nats "bench.$name" "$c")
      echo "round $round c=$c $name: $figures"
      echo "$figures" >>"$work/$name.$c"
    done
  done
done
for c in $CONCURRENCY; do summary "$c" wafer plain; done
