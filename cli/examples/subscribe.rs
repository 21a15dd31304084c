//! Print the messages on a subject as any NATS subscriber sees them: `ready` once the
//! subscription is in place (so a caller can start publishing without guessing a delay), the
//! first `--show` messages, and how many of `--count` arrived.
//! `cargo run -p nats-sink-cli --example subscribe -- --server 127.0.0.1:4222 --subject rows --count 3`

use std::io::Write as _;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::Parser;
use futures::StreamExt as _;

#[derive(Parser)]
struct Args {
    #[arg(long)]
    server: String,
    #[arg(long)]
    subject: String,
    /// How many messages to wait for.
    #[arg(long, default_value_t = 3)]
    count: usize,
    /// How many of them to print.
    #[arg(long, default_value_t = 3)]
    show: usize,
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
    // The server has the subscription once it answers this round trip.
    client.flush().await?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready")?;
    out.flush()?;
    let mut received = 0;
    let receive = async {
        while received < args.count {
            let Some(message) = subscriber.next().await else {
                break;
            };
            if received < args.show {
                let payload = String::from_utf8_lossy(&message.payload);
                writeln!(out, "[{}] {payload}", message.subject)?;
            }
            received += 1;
        }
        anyhow::Ok(())
    };
    let outcome = tokio::time::timeout(Duration::from_secs(args.timeout), receive).await;
    writeln!(
        std::io::stdout(),
        "received {received} of {} messages",
        args.count
    )?;
    match outcome {
        Err(_) => bail!("the rest did not arrive within {} s", args.timeout),
        Ok(result) => result?,
    }
    if received < args.count {
        bail!("the subscription ended early");
    }
    Ok(())
}
