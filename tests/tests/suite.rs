//! Every end-to-end test, in one binary: each file here is a module, so the suite links wasmtime
//! once. Run one file with a filter: `cargo test -p nats-sink-tests --test suite e2e::`.

mod arrow;
mod arrow_input;
mod component;
mod conformance;
mod create_stream;
mod debezium;
mod docs;
mod e2e;
mod faults;
mod features;
mod hostile;
mod hostile_input;
mod jco;
mod metrics_endpoint;
mod pooling;
mod risingwave;
mod security;
mod sharing;
mod streaming;
mod upsert;
