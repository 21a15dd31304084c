//! Print a NATS KV bucket as any KV client reads it: every live key and its value, sorted by
//! key, one `key value` line each (a deleted key is not listed).
//! `cargo run -p nats-sink-cli --example kv_read -- --server 127.0.0.1:4222 --bucket ORDERS`

use std::io::Write as _;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use futures::StreamExt as _;

#[derive(Parser)]
struct Args {
    #[arg(long)]
    server: String,
    #[arg(long)]
    bucket: String,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let read = async {
        let client = async_nats::connect(&args.server)
            .await
            .with_context(|| format!("connecting to {}", args.server))?;
        let store = async_nats::jetstream::new(client)
            .get_key_value(&args.bucket)
            .await
            .with_context(|| format!("KV bucket {}", args.bucket))?;
        let mut keys: Vec<String> = Vec::new();
        let mut listed = store.keys().await.context("listing the keys")?;
        while let Some(key) = listed.next().await {
            keys.push(key.context("listing the keys")?);
        }
        keys.sort();
        let mut out = std::io::stdout().lock();
        for key in keys {
            // A key deleted between the listing and now reads as none.
            if let Some(value) = store
                .get(&key)
                .await
                .with_context(|| format!("key {key}"))?
            {
                writeln!(out, "{key} {}", String::from_utf8_lossy(&value))?;
            }
        }
        anyhow::Ok(())
    };
    tokio::time::timeout(Duration::from_secs(args.timeout), read)
        .await
        .context("timed out")?
}
