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
cargo build --release -q -p wafer-cli -p wafer-guests -p wafer-http --example plain_add
wafer=$PWD/target/release/wafer
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

# Waits for a "Listening on http://ADDR" line in $1; prints ADDR.
listening() {
  for _ in $(seq 600); do
    if grep -q "Listening on http://" "$1"; then
      grep -o "http://[0-9.:]*" "$1" | head -1
      return
    fi
    sleep 0.1
  done
  echo "never listened: $(cat "$1")" >&2
  exit 1
}

# One wrk run: "requests/s p50-µs p99-µs".
load() { # concurrency url body
  local threads=$(( $1 < 2 ? 1 : 2 ))
  BODY=$3 wrk -t"$threads" -c"$1" -d"${DURATION}s" --latency -s "$here/post.lua" "$2" |
    awk 'function us(t) { if (t ~ /us$/) return t + 0; if (t ~ /ms$/) return t * 1000; return t * 1000000 }
         /^ +50%/ {p50=us($2)} /^ +99%/ {p99=us($2)} /Requests\/sec/ {rps=$2}
         /Non-2xx|Socket errors/ {print "errors: " $0 > "/dev/stderr"}
         END {printf "%d %d %d\n", rps, p50, p99}'
}

median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

target/release/examples/plain_add 127.0.0.1:0 2>"$work/plain.log" &
plain=$(listening "$work/plain.log")/add

mkdir -p "$work/http"
cp examples/http/* "$work/http/"
sed -i 's/127.0.0.1:8080/127.0.0.1:0/' "$work/http/_index.yaml"
"$wafer" run "$work/http" 2>"$work/wafer.log" &
endpoint=$(listening "$work/wafer.log")/add

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
dapr=$(listening "$work/dapr.log")/v1.0/bindings/hello
dapr_body='{"operation":"execute","metadata":{"args":"salaboy"}}'

for c in 1 64; do
  : >"$work/plain.$c"; : >"$work/wafer.$c"; : >"$work/dapr.$c"
  for round in $(seq "$ROUNDS"); do
    p=$(load "$c" "$plain" "[2, 40]"); echo "$p" >>"$work/plain.$c"
    w=$(load "$c" "$endpoint" "[2, 40]"); echo "$w" >>"$work/wafer.$c"
    d=$(load "$c" "$dapr" "$dapr_body"); echo "$d" >>"$work/dapr.$c"
    echo "c=$c round $round: plain $p | wafer $w | dapr $d  (req/s, p50 and p99 in µs)"
  done
done
echo
for c in 1 64; do
  for name in plain wafer dapr; do
    rps=$(cut -d' ' -f1 "$work/$name.$c" | median)
    p50=$(cut -d' ' -f2 "$work/$name.$c" | median)
    p99=$(cut -d' ' -f3 "$work/$name.$c" | median)
    echo "c=$c median of rounds: $name $rps req/s, p50 $p50 µs, p99 $p99 µs"
  done
done
