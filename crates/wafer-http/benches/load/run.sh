#!/usr/bin/env bash
# The HTTP load benchmark of BENCHMARKS.md, with wrk (Debian's `wrk`):
#   (a) `wafer run examples/http`'s payload endpoint /add against the plain
#       axum handler of examples/plain_add.rs, in the same run;
#   (b) Dapr's binding API running a small WASI program (`hello`).
# At concurrency 1 and 64, ROUNDS rounds (default 5) of DURATION seconds
# (default 5), the two servers of (a) taking turns, so that a neighbour's
# load on a shared machine hits both alike. Prints every round, then the
# medians.
#
#   crates/wafer-http/benches/load/run.sh
set -euo pipefail
cd "$(dirname "$0")/../../../.."
DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-5}
here=crates/wafer-http/benches/load
# Two builds: with `--example`, cargo builds only the example of each
# package named, not the wafer binary.
cargo build --release -q -p wafer-cli -p wafer-guests
cargo build --release -q -p wafer-http --example plain_add
# WAFER=path runs another build of wafer (an older commit, to compare).
wafer=${WAFER:-$PWD/target/release/wafer}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

source crates/wafer-http/benches/lib.sh

target/release/examples/plain_add 127.0.0.1:0 2>"$work/plain.log" &
plain=$(listening "$work/plain.log" "Listening on")/add

mkdir -p "$work/http"
cp examples/http/* "$work/http/"
sed -i 's/127.0.0.1:8080/127.0.0.1:0/' "$work/http/_index.yaml"
"$wafer" run "$work/http" 2>"$work/wafer.log" &
endpoint=$(listening "$work/wafer.log" "Listening on")/add

mkdir -p "$work/dapr/components"
cp "$(find target/release/build -path '*wasm32-wasip1/release/hello.wasm' | head -1)" "$work/dapr/hello.wasm"
cat >"$work/dapr/components/hello.yaml" <<YAML
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: hello
spec:
  type: bindings.wasm
  version: v1
  metadata:
  - name: url
    value: file://hello.wasm
YAML
(cd "$work/dapr" && exec "$wafer" run components --dapr-http-port 0 2>"$work/dapr.log") &
dapr=$(listening "$work/dapr.log" "Listening on")/v1.0/bindings/hello
dapr_body='{"operation":"execute","metadata":{"args":"salaboy"}}'

for c in 1 64; do
  : >"$work/plain.$c"; : >"$work/wafer.$c"; : >"$work/dapr.$c"
  for round in $(seq "$ROUNDS"); do
    p=$(BODY="[2, 40]" load "$c" "$plain"); echo "$p" >>"$work/plain.$c"
    w=$(BODY="[2, 40]" load "$c" "$endpoint"); echo "$w" >>"$work/wafer.$c"
    d=$(BODY="$dapr_body" load "$c" "$dapr"); echo "$d" >>"$work/dapr.$c"
    echo "c=$c round $round: plain $p | wafer $w | dapr $d  (req/s, p50 and p99 in µs)"
  done
done
echo
for c in 1 64; do summary "$c" plain wafer dapr; done
