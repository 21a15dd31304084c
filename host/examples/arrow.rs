//! Sinking Arrow columns from a Rust program: one record batch in, one message per row out.
//!
//! `cargo run -p nats-sink --example arrow -- 127.0.0.1:4222 demo.arrow`
//! (build the component first: `just build`)

use std::sync::Arc;

use anyhow::Context as _;
use nats_sink::arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use nats_sink::{Column, SinkRuntime};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let server = args.next().unwrap_or_else(|| "127.0.0.1:4222".into());
    let subject = args.next().unwrap_or_else(|| "demo.arrow".into());

    let runtime =
        SinkRuntime::load(nats_sink::default_component_path()).context("loading the component")?;
    let options: Vec<(String, String)> = [
        ("connector", "nats"),
        ("server_url", server.as_str()),
        ("subject", subject.as_str()),
        ("connect_mode", "plain"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    // Fields are matched to columns by name; an Int64 field fills an integer column as long
    // as every value fits (a value that does not is refused, naming its row).
    let schema = vec![
        Column {
            name: "id".into(),
            data_type: "integer".into(),
        },
        Column {
            name: "sku".into(),
            data_type: "varchar".into(),
        },
    ];
    let mut sink = runtime.open(&options, &schema).await?;

    let batch = RecordBatch::try_from_iter([
        (
            "sku",
            Arc::new(StringArray::from(vec![Some("SKU-1"), None, Some("SKU-3")])) as ArrayRef,
        ),
        ("id", Arc::new(Int64Array::from(vec![1, 2, 3])) as ArrayRef),
    ])?;
    sink.write_arrow(&batch).await?; // {"id":1,"sku":"SKU-1"}, {"id":2,"sku":null}, ...
    sink.flush().await?; // returns once NATS confirmed all three
    println!(
        "published and confirmed {} messages on {subject}",
        sink.metrics().snapshot().messages
    );
    sink.close().await?;
    Ok(())
}
