# What the NATS benchmark scripts share (sourced by request_reply/run.sh
# and jetstream_pipeline/run.sh, after crates/wafer-http/benches/lib.sh):
# waiting for a readiness line, and a local nats-server.

# Waits for a line holding $2 in the log $1.
ready() {
  for _ in $(seq 600); do
    if grep -q "$2" "$1"; then return; fi
    sleep 0.1
  done
  echo "never ready: $(cat "$1")" >&2
  exit 1
}

# Starts Debian's nats-server on a free loopback port with the extra
# arguments given, its log in $work/nats.log, as a job of the calling
# shell (its EXIT trap stops it); sets url to its client address.
start_nats() { # [nats-server arguments]
  nats-server "$@" -a 127.0.0.1 -p -1 2>"$work/nats.log" &
  ready "$work/nats.log" "Server is ready"
  url=nats://$(grep -o "client connections on [0-9.:]*" "$work/nats.log" | awk '{print $4}')
}
