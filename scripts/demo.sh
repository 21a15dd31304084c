#!/usr/bin/env bash
# Start nats-server on a free loopback port, sink the example dataset, print a few messages as a
# subscriber sees them, and stop the server.
set -euo pipefail
cd "$(dirname "$0")/.."
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
work=$(mktemp -d)
nats-server -a 127.0.0.1 -p "$port" -l "$work/server.log" &
server=$!
cleanup() {
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true  # the killed server's status is not ours
  rm -rf "$work"
}
trap cleanup EXIT
for _ in $(seq 100); do grep -q "Server is ready" "$work/server.log" 2>/dev/null && break; sleep 0.05; done

echo "== nats-server on 127.0.0.1:$port; subscribing to 'example.rows'"
cargo run -q -p nats-sink --example subscribe -- --server "127.0.0.1:$port" --subject example.rows --count 3 > "$work/received" &
subscriber=$!
sleep 1
echo "== nats-sink run (examples/all_types.jsonl, $(wc -l < examples/all_types.jsonl) rows)"
target/debug/nats-sink run \
  --schema examples/all_types.schema.json --input examples/all_types.jsonl \
  --with connector=nats --with server_url="127.0.0.1:$port" --with subject=example.rows \
  --with connect_mode=plain --with type=append-only
wait $subscriber
echo "== the first messages, as a subscriber sees them"
cat "$work/received"
