#!/usr/bin/env bash
# Start nats-server on a free loopback port, subscribe, sink the example dataset, and show what
# the subscriber received; stop the server. Runs prebuilt binaries only (`just build` makes
# them), and publishes only once the subscriber says it is ready, so nothing depends on timing.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=target/debug
for exe in "$bin/nats-sink" "$bin/examples/subscribe"; do
  [ -x "$exe" ] || { echo "demo: $exe is missing; run 'just build' first" >&2; exit 1; }
done
input=examples/all_types.jsonl
rows=$(wc -l < "$input")
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
work=$(mktemp -d)
server="" subscriber=""
cleanup() {
  for pid in $subscriber $server; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true  # a killed child's status is not ours
  done
  rm -rf "$work"
}
trap cleanup EXIT

# wait_for FILE TEXT WHAT: until FILE holds TEXT, for at most 30 s.
wait_for() {
  for _ in $(seq 300); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "demo: $3 was not ready within 30 s" >&2
  cat "$1" >&2 2>/dev/null || true
  exit 1
}

nats-server -a 127.0.0.1 -p "$port" -l "$work/server.log" &
server=$!
wait_for "$work/server.log" "Server is ready" nats-server
echo "== nats-server on 127.0.0.1:$port; subscribing to 'example.rows'"
"$bin/examples/subscribe" --server "127.0.0.1:$port" --subject example.rows \
  --count "$rows" --show 3 > "$work/received" &
subscriber=$!
wait_for "$work/received" "^ready$" "the subscriber"

echo "== nats-sink run ($input, $rows rows)"
"$bin/nats-sink" run \
  --schema examples/all_types.schema.json --input "$input" \
  --with connector=nats --with server_url="127.0.0.1:$port" --with subject=example.rows \
  --with connect_mode=plain --with type=append-only
status=0
wait "$subscriber" || status=$?
subscriber=""
echo "== what the subscriber received (the first 3 messages)"
grep -v '^ready$' "$work/received"
exit "$status"
