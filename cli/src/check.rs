//! `nats-sink check`: what a sink with these options would meet, printed line by line.

use anyhow::anyhow;

use super::{first_call, preflight, refuse_preflight, ComponentArgs, Failure, GivenOptions};

pub(crate) async fn check(
    component: &ComponentArgs,
    options: &GivenOptions,
) -> Result<(), Failure> {
    let runtime = component.load()?;
    let target = runtime
        .resolve(&options.pairs)
        .await
        .map_err(|e| first_call(options.secret.host_error(e)))?;
    let reach = runtime.reach(&options.pairs);
    refuse_preflight(preflight(&target, &reach, options)?)?;
    let servers = target.connect.servers.clone();
    let health = nats_sink::health::check(target, &reach)
        .await
        .map_err(|e| Failure::Delivery(anyhow!(nats_sink::describe_transport_error(&e))))?;
    say!(
        "server       {} {} at {}",
        health.server_name,
        health.server_version,
        nats_sink::transport::list_servers(&servers)
    )?;
    say!("max_payload  {} bytes", health.max_payload)?;
    match &health.route {
        None => say!("route        per subject (the subject is filled from each row)")?,
        Some(nats_sink::Route::JetStream { stream }) => {
            let window = health
                .duplicate_window
                .map(|w| format!(", duplicate window {} s", w.as_secs_f64()))
                .unwrap_or_default();
            say!("route        JetStream stream {stream} (acked{window})")?;
        }
        Some(nats_sink::Route::Core) => {
            say!("route        core NATS (no stream captures the subject)")?
        }
    }
    match &health.stream_plan {
        None => {}
        Some(nats_sink::stream::StreamPlan::Captured { stream }) => {
            say!("stream       {stream} captures the subject; allow_create_stream creates nothing")?
        }
        Some(nats_sink::stream::StreamPlan::Create(request)) => say!(
            "stream       would create {} (not created by check)",
            nats_sink::stream::describe(request)
        )?,
    }
    if let Some((name, state)) = &health.bucket {
        say!("bucket       {}", state.describe(name))?;
    }
    match &health.permission {
        nats_sink::health::Permission::Allowed => say!("publish      allowed")?,
        nats_sink::health::Permission::Denied(why) => say!("publish      denied: {why}")?,
        nats_sink::health::Permission::Unknown(why) => say!("publish      {why}")?,
        nats_sink::health::Permission::ProbeFailed(why) => say!("publish      unknown: {why}")?,
    }
    match health.verdict() {
        Ok(line) => say!("ok: {line}"),
        Err(line) => Err(Failure::Delivery(anyhow!(line))),
    }
}
