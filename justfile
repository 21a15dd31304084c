set shell := ["bash", "-euo", "pipefail", "-c"]

# List the recipes.
default:
    @just --list

# Install just, nats-server and the guest's wasm32 toolchain (safe to run twice).
setup:
    ./setup.sh

# Build the guest component (target/nats-sink.wasm), then the host CLI with it embedded, and
# the example subscriber the demo uses.
build:
    ./scripts/build-guest.sh
    cargo build -p nats-sink-cli --bin nats-sink --example subscribe
    cd js && npm run --silent build

# Build, start a local nats-server, sink the example dataset and show what a subscriber sees.
run: build
    ./scripts/demo.sh

# Every test: guest unit tests, host unit tests, the component and end-to-end tests.
test: build
    ./scripts/build-guest.sh --hostile
    cargo test --workspace
    just test-python
    just test-node

# The Python host's tests (python/): pytest against real nats-servers, beside the CLI that
# `just build` made. Run `just build` first when calling it alone.
test-python:
    cd python && python3 -m pytest -q

# The Node host's tests (js/test/): node's test runner against real nats-servers, the host
# conformance suite's Node driver among them. Run `just build` (and
# `./scripts/build-guest.sh --hostile`) first when calling it alone.
test-node:
    cd js && npm test

# The lint gate CI runs: formatting, and clippy with every warning an error. Clippy also holds
# the code to the workspace's declared rust-version (its incompatible_msrv lint). Then every
# relative link and repository path the documentation names must exist.
lint:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets -- -D warnings
    python3 scripts/check-doc-links.py

# Regenerate docs/reference/options.md from `nats-sink describe` (names, required, defaults,
# docs). `cargo test -p nats-sink-tests --test suite docs::` fails while the committed file differs.
docs: build
    NATS_SINK_WRITE_DOCS=1 cargo test -p nats-sink-tests --test suite docs::

# The fault-injection tests (crashes, restarts, leader loss, replay, refusals; the sink itself
# killed, signalled and resumed), printing docs/delivery.md's proof table from what they
# measured.
faults: build
    cargo test -p nats-sink-tests --test suite -- faults:: streaming:: upsert::a_changelog debezium::a_killed_run --nocapture --test-threads 1 > target/faults.log 2>&1 || { cat target/faults.log; exit 1; }
    @echo "| fault | messages sent | rows in the stream | duplicates | outcome / time to recover |"
    @echo "|---|---|---|---|---|"
    @grep -o 'PROOF |.*' target/faults.log | sed 's/^PROOF //'

# The benchmark (not a test): raw async-nats vs the native sink vs the component, on core NATS
# and JetStream at batches of 1, 64 and 1024, in paired rounds (every mode once per round, the
# order rotated; figures are medians over rounds with their min-max spread, `!` past +-15%);
# encoding alone, paired the same way; start-up with and without the compile cache;
# instantiation; peak memory over 1,000,000 rows. Prints tables, writes target/bench.json and
# says whether its ratios agree with the previous run's. BENCH_ROWS, BENCH_RUNS (rounds) and
# BENCH_MEMORY_ROWS change its size. Then many sinks in one process (SCALE_SINKS, default 1,000;
# 8 sinks against one over SCALE_ROWS) against the issue's targets, with shared connections
# (target/bench-scale.json), with a connection per sink (target/bench-scale-unshared.json) and
# shared with wasmtime's pooling allocator (target/bench-scale-pooled.json),
# and the Python host beside the CLI in paired rounds (python/bench.py, target/bench-python.json),
# then nats_sink.spark on a local Spark: 2 partitions against 1 and against the Python host alone
# (python/bench_spark.py, target/bench-spark.json; BENCH_SPARK_ROWS, BENCH_SPARK_ROUNDS).
bench:
    ./scripts/build-guest.sh
    cargo build --release -p nats-sink-cli
    cargo bench -p nats-sink-tests --bench sink
    cargo bench -p nats-sink-tests --bench scale
    SCALE_SHARED=0 cargo bench -p nats-sink-tests --bench scale
    SCALE_POOLING=1 cargo bench -p nats-sink-tests --bench scale
    cd python && python3 bench.py
    cd python && python3 bench_spark.py
