#!/usr/bin/env bash
# The wasi:http benchmark of BENCHMARKS.md, with wrk (Debian's `wrk`) and
# `wasmtime serve` (wasmtime-cli 48, `cargo install wasmtime-cli --version
# 48.0.8`; give its path in WASMTIME, default `wasmtime` on PATH):
#   (a) the hello-world proxy component (guests/rust/http/examples/hello.rs)
#       served by `wafer run` and by `wasmtime serve`, a fresh instance per
#       request (both defaults);
#   (b) the same with instances reused for REUSE requests (wafer: `pool:
#       {type: lazy, max_calls: REUSE}`; wasmtime: --max-instance-reuse-count);
#   (floor) the plain_add example's GET /hello, a plain axum handler
#       answering a constant with no Wasm at all: what this HTTP stack
#       costs without a guest, a floor for wafer;
#   (c) one allowed outbound call: `fetch` (the proxy calling a local
#       upstream) against `hello`, and a plain Rust client (examples/
#       plain_get.rs, on one kept connection as wafer sends them, and on a
#       new connection per request).
# At concurrency 1 and 64, ROUNDS rounds (default 5) of DURATION seconds
# (default 5), the servers taking turns so that a neighbour's load on a
# shared machine hits them alike. Prints every round, then the medians.
#
#   WASMTIME=/path/to/wasmtime crates/wafer-http/benches/proxy/run.sh
set -euo pipefail
cd "$(dirname "$0")/../../../.."
DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-5}
REUSE=${REUSE:-128}
WASMTIME=${WASMTIME:-wasmtime}
cargo build --release -q -p wafer-cli -p wafer-guests -p wafer-http --example plain_add --example plain_get
wafer=$PWD/target/release/wafer
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

source crates/wafer-http/benches/lib.sh

guest() { find target/release/build -path "*wasm32-wasip2/release/examples/$1.wasm" | head -1; }
cp "$(guest hello)" "$work/hello.wasm"
cp "$(guest fetch)" "$work/fetch.wasm"

target/release/examples/plain_add 127.0.0.1:0 2>"$work/upstream.log" &
upstream=$(listening "$work/upstream.log" "Listening on")

cat >"$work/_index.yaml" <<YAML
version: "1.0"
namespace: bench
entries:
  - { name: files, kind: fs.directory, directory: . }
  - name: hello
    kind: function.wasm
    fs: files
    path: hello.wasm
    hash: sha256:$(sha256sum "$work/hello.wasm" | cut -d' ' -f1)
  - name: reused
    kind: function.wasm
    fs: files
    path: hello.wasm
    hash: sha256:$(sha256sum "$work/hello.wasm" | cut -d' ' -f1)
    pool: { type: lazy, max_size: 64, max_calls: $REUSE }
  - name: fetch
    kind: function.wasm
    fs: files
    path: fetch.wasm
    hash: sha256:$(sha256sum "$work/fetch.wasm" | cut -d' ' -f1)
    imports: [wasi:http]
    allowed_outbound_hosts: ["$upstream"]
  - { name: web, kind: http.service, addr: "127.0.0.1:0" }
  - { name: hello-route, kind: http.endpoint, path: /hello, func: hello }
  - { name: reused-route, kind: http.endpoint, path: /reused, func: reused }
  - { name: fetch-route, kind: http.endpoint, path: /fetch, func: fetch }
YAML
WAFER_LOG="info,wafer::access=off" "$wafer" run "$work" 2>"$work/wafer.log" &
wafer_url=$(listening "$work/wafer.log" "Listening on")

"$WASMTIME" serve --addr 127.0.0.1:0 -S cli "$work/hello.wasm" 2>"$work/fresh.log" &
fresh=$(listening "$work/fresh.log" "Serving HTTP on")
"$WASMTIME" serve --addr 127.0.0.1:0 -S cli --max-instance-reuse-count "$REUSE" "$work/hello.wasm" 2>"$work/reuse.log" &
reuse=$(listening "$work/reuse.log" "Serving HTTP on")

# Both answer before anything is measured.
curl -sf "$wafer_url/hello" >/dev/null && curl -sf "$fresh/" >/dev/null && curl -sf "$reuse/" >/dev/null
curl -sf -H "x-fetch-url: $upstream/hello" "$wafer_url/fetch" >/dev/null

for c in 1 64; do
  for name in wasmtime_fresh wafer_fresh wasmtime_reuse wafer_reuse floor; do : >"$work/$name.$c"; done
  for round in $(seq "$ROUNDS"); do
    a=$(load "$c" "$fresh/"); echo "$a" >>"$work/wasmtime_fresh.$c"
    b=$(load "$c" "$wafer_url/hello"); echo "$b" >>"$work/wafer_fresh.$c"
    d=$(load "$c" "$reuse/"); echo "$d" >>"$work/wasmtime_reuse.$c"
    e=$(load "$c" "$wafer_url/reused"); echo "$e" >>"$work/wafer_reuse.$c"
    g=$(load "$c" "$upstream/hello"); echo "$g" >>"$work/floor.$c"
    echo "c=$c round $round: fresh wasmtime $a | wafer $b ; reused wasmtime $d | wafer $e ; floor $g  (req/s, p50 and p99 in µs)"
  done
done
: >"$work/fetch.1"; : >"$work/hello.1"
for round in $(seq "$ROUNDS"); do
  f=$(load 1 "$wafer_url/fetch" "x-fetch-url: $upstream/hello"); echo "$f" >>"$work/fetch.1"
  h=$(load 1 "$wafer_url/hello"); echo "$h" >>"$work/hello.1"
  echo "outbound round $round: fetch $f | hello $h"
done
echo
for c in 1 64; do summary "$c" wasmtime_fresh wafer_fresh wasmtime_reuse wafer_reuse floor; done
for name in fetch hello; do
  echo "c=1 median of rounds: $name p50 $(cut -d' ' -f2 "$work/$name.1" | median) µs, p99 $(cut -d' ' -f3 "$work/$name.1" | median) µs"
done
target/release/examples/plain_get "$upstream/hello" 20000
