# What the HTTP benchmark scripts share (sourced by load/run.sh and
# proxy/run.sh): waiting for a server's address, one wrk run, medians.

# Waits for a line matching $2 (an "http://ADDR" follows it) in the log $1;
# prints ADDR.
listening() {
  for _ in $(seq 600); do
    if grep -q "$2" "$1"; then
      grep "$2" "$1" | grep -o "http://[0-9.:]*" | head -1
      return
    fi
    sleep 0.1
  done
  echo "never listened: $(cat "$1")" >&2
  exit 1
}

# One wrk run of DURATION seconds: "requests/s p50-µs p99-µs". With BODY
# set, it POSTs BODY (post.lua); with a third argument, sends that header.
load() { # concurrency url [header]
  local threads=$(( $1 < 2 ? 1 : 2 ))
  local script=()
  if [ -n "${BODY:-}" ]; then script=(-s "$(dirname "${BASH_SOURCE[0]}")/load/post.lua"); fi
  BODY=${BODY:-} wrk -t"$threads" -c"$1" -d"${DURATION}s" --latency "${script[@]}" ${3:+-H "$3"} "$2" |
    awk 'function us(t) { if (t ~ /us$/) return t + 0; if (t ~ /ms$/) return t * 1000; return t * 1000000 }
         /^ +50%/ {p50=us($2)} /^ +99%/ {p99=us($2)} /Requests\/sec/ {rps=$2}
         /Non-2xx|Socket errors/ {print "errors: " $0 > "/dev/stderr"}
         END {printf "%d %d %d\n", rps, p50, p99}'
}

median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

# Prints, for each NAME, the medians over rounds of "$work/NAME.$1" (lines
# of "requests/s p50 p99").
summary() { # concurrency name...
  local c=$1 name
  shift
  for name in "$@"; do
    local rps p50 p99
    rps=$(cut -d' ' -f1 "$work/$name.$c" | median)
    p50=$(cut -d' ' -f2 "$work/$name.$c" | median)
    p99=$(cut -d' ' -f3 "$work/$name.$c" | median)
    echo "c=$c median of rounds: $name $rps req/s, p50 $p50 µs, p99 $p99 µs"
  done
}
