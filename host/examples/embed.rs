//! Embedding nats-sink in a Rust program: load the component, open a sink, write, flush, close.
//!
//! `cargo run -p nats-sink --example embed -- 127.0.0.1:4222 demo.rows`
//! (build the component first: `just build`)

use anyhow::Context as _;
use nats_sink::{Column, Datum, Rows, SinkRuntime};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let server = args.next().unwrap_or_else(|| "127.0.0.1:4222".into());
    let subject = args.next().unwrap_or_else(|| "demo.rows".into());

    // Compiled and pre-instantiated once; every `open` gets its own store and connection.
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
    let schema = vec![
        Column {
            name: "id".into(),
            data_type: "bigint".into(),
        },
        Column {
            name: "item".into(),
            data_type: "struct<sku varchar, qty integer>".into(),
        },
        Column {
            name: "tags".into(),
            data_type: "varchar[]".into(),
        },
    ];
    let mut sink = runtime.open(&options, &schema).await?;

    let rows: Rows = (1..=3)
        .map(|id| {
            vec![
                Datum::Bigint(id),
                Datum::Struct(vec![
                    Datum::Varchar(format!("SKU-{id}")),
                    Datum::Integer(id as i32 * 10),
                ]),
                Datum::List(vec![Datum::Varchar("new".into())]),
            ]
        })
        .collect();
    sink.write(&rows).await?; // e.g. {"id":1,"item":{"qty":10,"sku":"SKU-1"},"tags":["new"]} (keys sorted)
    sink.flush().await?; // returns once NATS confirmed all three
    println!(
        "published and confirmed {} messages on {subject}",
        sink.metrics().snapshot().messages
    );
    sink.close().await?;
    Ok(())
}
