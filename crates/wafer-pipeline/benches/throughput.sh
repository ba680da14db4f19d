#!/usr/bin/env bash
# Messages per second through `wafer run`, end to end (start-up included,
# so use a count large enough that it does not matter):
#   generate (100-byte messages) -> wasm (a louder-style Benthos guest) -> drop
# at 1 and 2 threads, and the same pipeline with no processor.
#
#   cargo build --release -p wafer-cli -p wafer-guests
#   crates/wafer-pipeline/benches/throughput.sh [COUNT] [ROUNDS]
set -euo pipefail
count=${1:-2000000}
rounds=${2:-3}
root=$(cd "$(dirname "$0")/../../.." && pwd)
wafer=$root/target/release/wafer
guest=$(find "$root/target/release/build" -path '*wasm32-unknown-unknown/release/examples/louder.wasm' | head -1)
[ -x "$wafer" ] && [ -f "$guest" ] || { echo "build first: cargo build --release -p wafer-cli -p wafer-guests" >&2; exit 1; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
message=$(printf 'x%.0s' $(seq 100))

config() { # threads, processors
  cat <<YAML
input:
  generate: {mapping: 'root = "$message"', count: $count, interval: ""}
pipeline:
  threads: $1
  processors: $2
output:
  drop: {}
YAML
}
config 1 "[{wasm: {module_path: $guest}}]" > "$dir/wasm1.yaml"
config 2 "[{wasm: {module_path: $guest}}]" > "$dir/wasm2.yaml"
config 1 "[]" > "$dir/none.yaml"

for round in $(seq "$rounds"); do
  for name in wasm1 wasm2 none; do
    start=$(date +%s.%N)
    "$wafer" run "$dir/$name.yaml" 2>"$dir/err" >/dev/null
    end=$(date +%s.%N)
    grep -q "processed $count, dropped 0, failed 0" "$dir/err" || { cat "$dir/err" >&2; exit 1; }
    awk -v r="$round" -v n="$name" -v c="$count" -v s="$start" -v e="$end" 'BEGIN { printf "round %s %s: %d messages/s\n", r, n, c / (e - s) }'
  done
done
