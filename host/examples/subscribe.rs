//! Print the first N messages on a subject, as any NATS subscriber would see them.
//! `cargo run -p nats-sink --example subscribe -- --server 127.0.0.1:4222 --subject rows --count 3`

use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use futures::StreamExt as _;

#[derive(Parser)]
struct Args {
    #[arg(long)]
    server: String,
    #[arg(long)]
    subject: String,
    #[arg(long, default_value_t = 3)]
    count: usize,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let client = async_nats::connect(&args.server)
        .await
        .with_context(|| format!("connecting to {}", args.server))?;
    let mut subscriber = client.subscribe(args.subject.clone()).await?;
    client.flush().await?;
    let receive = async {
        for _ in 0..args.count {
            let Some(message) = subscriber.next().await else {
                break;
            };
            println!(
                "[{}] {}",
                message.subject,
                String::from_utf8_lossy(&message.payload)
            );
        }
    };
    tokio::time::timeout(Duration::from_secs(args.timeout), receive)
        .await
        .context("no messages arrived in time")?;
    Ok(())
}
