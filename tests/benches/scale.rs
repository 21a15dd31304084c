//! `just bench`, after the main benchmark: many sinks in one process, through the library's
//! public API, against one `nats-server` this program starts on free loopback ports (client and
//! monitoring). Prints a table against the targets of issue 21 and writes
//! `target/bench-scale.json`.
//!
//! 1. `SCALE_SINKS` sinks (default 1,000), one connection config, 10 distinct subjects: the
//!    time to open them all, resident memory (after one sink, after all, the process's peak),
//!    the TCP connections the server counts, and the throughput of all of them writing
//!    `SCALE_ROWS_PER_SINK` rows (default 100) at once and flushing. The server's own count of
//!    messages received must match what was written. When opening fails (memory, file
//!    descriptors, the server's limits) or resident memory passes `SCALE_MAX_RSS_MIB` (default
//!    half the memory available), it stops there, says why, and measures the sinks it has.
//! 2. 8 sinks writing at once (tokio tasks) against one sink, the same `SCALE_ROWS` rows in
//!    total (default 80,000), in `BENCH_RUNS` paired rounds (default 5, order rotated): the
//!    figure is the median of per-round ratios of total rows/s, with its min–max spread.
//!
//! Core NATS throughout; batches of 1,024 rows, a flush every 4,096 rows (as `sink.rs`).

#[path = "support/paired.rs"]
mod paired;

use std::sync::Arc;
use std::time::Instant;

use nats_sink::{Column, Datum, NatsConnector, Rows, RuntimeConfig, Sink, SinkRuntime};
use nats_sink_tests::{columns, component_path, free_port, http_get, target_dir, NatsServer};
use paired::{rotated, Spread};
use serde_json::json;

const SUBJECTS: usize = 10;
const BATCH: usize = 1024;
const CHECKPOINT_ROWS: usize = 4096;
const PARALLEL_SINKS: usize = 8;

// The targets.
const TARGET_CONNECTIONS: u64 = 1;
const TARGET_OPEN_SECONDS: f64 = 2.0;
const TARGET_PEAK_MIB: f64 = 512.0;
const TARGET_PARALLEL_RATIO: f64 = 0.9;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A `/proc` status field in MiB (`VmRSS`, `VmHWM`, `MemAvailable`), read from `file`.
fn proc_mib(file: &str, field: &str) -> Option<f64> {
    let text = std::fs::read_to_string(file).ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    let kib: f64 = line[field.len()..]
        .trim_start_matches(':')
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

fn rss_mib() -> f64 {
    proc_mib("/proc/self/status", "VmRSS").expect("VmRSS in /proc/self/status")
}

fn peak_rss_mib() -> f64 {
    proc_mib("/proc/self/status", "VmHWM").expect("VmHWM in /proc/self/status")
}

/// A number from the server's monitoring endpoint `path`, such as `/varz`'s `in_msgs`.
fn monitor_number(port: u16, path: &str, field: &str) -> Option<u64> {
    let body = http_get(port, path)?;
    serde_json::from_str::<serde_json::Value>(&body)
        .ok()?
        .get(field)?
        .as_u64()
}

/// TCP client connections the server counts (`total`: every page of `/connz`).
fn server_connections(port: u16) -> Option<u64> {
    monitor_number(port, "/connz?limit=1", "total")
}

fn schema() -> Vec<Column> {
    columns(&[
        ("order_id", "bigint"),
        ("customer", "varchar"),
        ("amount", "numeric"),
        ("created_at", "timestamptz"),
    ])
}

fn rows(from: usize, count: usize) -> Vec<Vec<Datum>> {
    (from as i64..(from + count) as i64)
        .map(|i| {
            vec![
                Datum::Bigint(i),
                Datum::Varchar(format!("customer-{:06}@example.com", i * 7919 % 1_000_000)),
                Datum::Numeric(format!("{}.{:02}", i % 10_000, i % 100)),
                Datum::Timestamptz(1_700_000_000_000_000 + i * 1_000_003),
            ]
        })
        .collect()
}

/// Rows as one sink writes them: per checkpoint, batches of `BATCH`.
fn checkpoints(rows: &[Vec<Datum>]) -> Vec<Vec<Rows>> {
    rows.chunks(CHECKPOINT_ROWS)
        .map(|c| c.chunks(BATCH).map(|b| b.iter().collect()).collect())
        .collect()
}

fn options(url: &str, subject: &str) -> Vec<(String, String)> {
    [
        ("server_url", url),
        ("subject", subject),
        ("connect_mode", "plain"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Write every checkpoint and flush each; hands the sink back for the next phase.
async fn write_all(mut sink: Sink, work: Arc<Vec<Vec<Rows>>>) -> Result<Sink, String> {
    for (id, batches) in work.iter().enumerate() {
        sink.begin_checkpoint(id as u64 + 1)
            .await
            .map_err(|e| e.to_string())?;
        for rows in batches {
            sink.write(rows).await.map_err(|e| e.to_string())?;
        }
        sink.flush().await.map_err(|e| e.to_string())?;
    }
    Ok(sink)
}

/// Why opening stopped short of the count asked for.
enum Stop {
    OpenFailed(String),
    MemoryCap(f64),
}

struct ManySinks {
    asked: usize,
    opened: usize,
    stop: Option<Stop>,
    open_seconds: f64,
    rss_before_mib: f64,
    rss_one_mib: f64,
    rss_opened_mib: f64,
    rss_written_mib: f64,
    peak_mib: f64,
    connections: Option<u64>,
    rows_written: usize,
    write_seconds: f64,
    write_failures: Vec<String>,
    messages_in: Option<u64>,
    close_seconds: f64,
}

impl ManySinks {
    /// RSS each sink past the first adds, once it has written and flushed.
    fn per_extra_sink_mib(&self) -> Option<f64> {
        (self.opened > 1)
            .then(|| (self.rss_written_mib - self.rss_one_mib) / (self.opened - 1) as f64)
    }
}

fn many_sinks(
    rt: &tokio::runtime::Runtime,
    runtime: &SinkRuntime,
    server: &NatsServer,
    monitor: u16,
    asked: usize,
    rows_per_sink: usize,
    rss_cap_mib: f64,
) -> ManySinks {
    let schema = schema();
    let work = Arc::new(checkpoints(&rows(0, rows_per_sink)));
    // A subscriber counts what arrives (the server's own in_msgs also counts the transport's
    // flush round trips); its one connection is taken off the server's count.
    // Counted as they come, on a thread and runtime of its own with room for every message:
    // on the sinks' runtime the counting task starved while 1,000 sinks wrote, its client's
    // buffer (65,536 messages) filled, and the client dropped what the server had delivered.
    let received = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counting = received.clone();
    let url = server.url();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let counter_rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        counter_rt.block_on(async move {
            use futures::StreamExt as _;
            let client = async_nats::ConnectOptions::new()
                .subscription_capacity(1 << 22)
                .connect(url)
                .await
                .expect("the counting subscriber connects");
            let mut arrivals = client.subscribe("scale.*").await.expect("subscribe");
            client.flush().await.expect("flush the subscription");
            ready_tx.send(()).unwrap();
            while arrivals.next().await.is_some() {
                counting.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        });
    });
    ready_rx
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("the counting subscriber is ready");
    let own_connections = server_connections(monitor).unwrap_or(1);
    let rss_before_mib = rss_mib();
    let mut sinks = Vec::with_capacity(asked);
    let (mut open_seconds, mut rss_one_mib, mut stop) = (0.0, rss_before_mib, None);
    let mut warm_rows = 0;
    for i in 0..asked {
        let rss = rss_mib();
        if rss > rss_cap_mib {
            stop = Some(Stop::MemoryCap(rss));
            break;
        }
        let opts = options(&server.url(), &format!("scale.subject{}", i % SUBJECTS));
        let started = Instant::now();
        let opened = rt.block_on(runtime.open(&opts, &schema));
        open_seconds += started.elapsed().as_secs_f64();
        match opened {
            Ok(sink) if i == 0 => {
                // The first sink writes once before the others open, so that its memory is
                // counted warm and the per-sink figure is what each further sink adds.
                let sink = rt
                    .block_on(write_all(sink, work.clone()))
                    .expect("the first sink writes");
                warm_rows = rows_per_sink;
                rss_one_mib = rss_mib();
                sinks.push(sink);
            }
            Ok(sink) => sinks.push(sink),
            Err(e) => {
                stop = Some(Stop::OpenFailed(format!("sink {}: {e}", i + 1)));
                break;
            }
        }
    }
    let opened = sinks.len();
    let rss_opened_mib = rss_mib();

    let started = Instant::now();
    let outcomes = rt.block_on(async {
        let tasks: Vec<_> = sinks
            .drain(..)
            .map(|sink| tokio::spawn(write_all(sink, work.clone())))
            .collect();
        let mut outcomes = Vec::with_capacity(tasks.len());
        for task in tasks {
            outcomes.push(task.await.map_err(|e| e.to_string()).and_then(|r| r));
        }
        outcomes
    });
    let write_seconds = started.elapsed().as_secs_f64();
    let mut write_failures = Vec::new();
    for outcome in outcomes {
        match outcome {
            Ok(sink) => sinks.push(sink),
            Err(e) => write_failures.push(e),
        }
    }
    let rss_written_mib = rss_mib();
    let connections = server_connections(monitor).map(|c| c.saturating_sub(own_connections));
    let expected = (warm_rows + (opened - write_failures.len()) * rows_per_sink) as u64;
    let messages_in = Some(rt.block_on(async {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        let count = || received.load(std::sync::atomic::Ordering::Relaxed);
        while count() < expected && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        count()
    }));

    let started = Instant::now();
    rt.block_on(async {
        for sink in sinks {
            sink.close().await.expect("close a sink");
        }
    });
    let close_seconds = started.elapsed().as_secs_f64();
    ManySinks {
        asked,
        opened,
        stop,
        open_seconds,
        rss_before_mib,
        rss_one_mib,
        rss_opened_mib,
        rss_written_mib,
        peak_mib: peak_rss_mib(),
        connections,
        rows_written: expected as usize,
        write_seconds,
        write_failures,
        messages_in,
        close_seconds,
    }
}

/// Seconds for `parts` sinks, each a tokio task, to write their share of the rows and flush.
/// Opening and closing are not timed.
fn parallel_run(
    rt: &tokio::runtime::Runtime,
    runtime: &SinkRuntime,
    server: &NatsServer,
    shares: &[Arc<Vec<Vec<Rows>>>],
    round: usize,
) -> f64 {
    let schema = schema();
    rt.block_on(async {
        let mut sinks = Vec::new();
        for (k, _) in shares.iter().enumerate() {
            let subject = format!("scale.parallel{}.round{round}.{k}", shares.len());
            let sink = runtime
                .open(&options(&server.url(), &subject), &schema)
                .await
                .expect("open a sink");
            sinks.push(sink);
        }
        let started = Instant::now();
        let tasks: Vec<_> = sinks
            .into_iter()
            .zip(shares)
            .map(|(sink, share)| tokio::spawn(write_all(sink, share.clone())))
            .collect();
        let mut done = Vec::new();
        for task in tasks {
            done.push(task.await.expect("a writer task").expect("a sink writes"));
        }
        let seconds = started.elapsed().as_secs_f64();
        for sink in done {
            sink.close().await.expect("close a sink");
        }
        seconds
    })
}

fn mark(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "not met"
    }
}

fn main() {
    let asked = env_number("SCALE_SINKS", 1000).max(1);
    let rows_per_sink = env_number("SCALE_ROWS_PER_SINK", 100).max(1);
    let total_rows = env_number("SCALE_ROWS", 80_000).max(PARALLEL_SINKS);
    let runs = env_number("BENCH_RUNS", 5).max(1);
    let available = proc_mib("/proc/meminfo", "MemAvailable").unwrap_or(4096.0);
    let rss_cap_mib = std::env::var("SCALE_MAX_RSS_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(available / 2.0);

    let monitor = free_port();
    let server = NatsServer::with_config(&format!("http: \"127.0.0.1:{monitor}\""));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // Sharing is opt-in (`NatsConnector::shared`); SCALE_SHARED=0 measures a client per sink.
    let shared = std::env::var("SCALE_SHARED").map_or(true, |v| v != "0");
    // SCALE_POOLING=1 loads with wasmtime's pooling allocator, a slot for every sink.
    let pooling = std::env::var("SCALE_POOLING").is_ok_and(|v| v == "1");
    let config = RuntimeConfig {
        pooled_instances: pooling.then(|| (asked.max(PARALLEL_SINKS) + 8) as u32),
        ..RuntimeConfig::default()
    };
    let mut runtime =
        SinkRuntime::load_with(component_path(), &config).expect("load the component");
    if shared {
        runtime = runtime.with_connector(Arc::new(NatsConnector::shared()));
    }
    let mode = format!(
        "{}, {}",
        if shared {
            "shared connections (NatsConnector::shared)"
        } else {
            "a connection per sink (the default)"
        },
        if pooling {
            "pooling allocator"
        } else {
            "on-demand allocator (the default)"
        }
    );
    assert!(
        server_connections(monitor).is_some(),
        "the server's monitoring endpoint answers"
    );

    println!(
        "nats-sink scale benchmark: {asked} sinks in one process, {SUBJECTS} subjects, one connection config, core NATS, {mode}"
    );
    let many = many_sinks(
        &rt,
        &runtime,
        &server,
        monitor,
        asked,
        rows_per_sink,
        rss_cap_mib,
    );
    let expected_messages = many.rows_written as u64;
    let delivered = many.messages_in == Some(expected_messages);
    let stop = match &many.stop {
        None => "none".to_string(),
        Some(Stop::OpenFailed(e)) => format!("opening failed: {e}"),
        Some(Stop::MemoryCap(rss)) => {
            format!("resident memory {rss:.0} MiB passed the cap of {rss_cap_mib:.0} MiB")
        }
    };
    let open_per_sink_ms = many.open_seconds / many.opened.max(1) as f64 * 1e3;
    let write_rate = many.rows_written as f64 / many.write_seconds;
    println!(
        "opened {} of {} sinks in {:.2} s ({open_per_sink_ms:.2} ms each); stopped early: {stop}",
        many.opened, many.asked, many.open_seconds
    );
    println!(
        "resident memory: {:.1} MiB before any sink, {:.1} MiB with one (written), {:.1} MiB with all opened, {:.1} MiB after all wrote; peak {:.1} MiB",
        many.rss_before_mib, many.rss_one_mib, many.rss_opened_mib, many.rss_written_mib, many.peak_mib
    );
    match many.per_extra_sink_mib() {
        Some(mib) => println!("each sink past the first: {:.0} KiB", mib * 1024.0),
        None => println!("each sink past the first: not measured (one sink)"),
    }
    println!(
        "TCP connections the server counts for the sinks (its total less the bench's subscriber): {}",
        many.connections
            .map_or("unknown (monitoring did not answer)".into(), |c| c
                .to_string())
    );
    println!(
        "all sinks writing {rows_per_sink} rows at once and flushing: {} rows in {:.2} s, {write_rate:.0} rows/s; {} write failures",
        many.rows_written,
        many.write_seconds,
        many.write_failures.len()
    );
    for failure in many.write_failures.iter().take(5) {
        println!("  {failure}");
    }
    println!(
        "messages a subscriber received: {} (expected {expected_messages}); closing all: {:.2} s",
        many.messages_in.map_or("unknown".into(), |m| m.to_string()),
        many.close_seconds
    );
    // A shortfall with slow consumers counted is the server dropping what it could not hand
    // the one subscriber fast enough (core NATS), not the sinks losing rows.
    println!(
        "server: {} messages in, {} slow-consumer drops",
        monitor_number(monitor, "/varz", "in_msgs").map_or("unknown".into(), |m| m.to_string()),
        monitor_number(monitor, "/varz", "slow_consumers")
            .map_or("unknown".into(), |m| m.to_string())
    );

    // 8 sinks against 1, the same rows in total, paired rounds.
    let all_rows = rows(0, total_rows);
    let one = vec![Arc::new(checkpoints(&all_rows))];
    let share = total_rows.div_ceil(PARALLEL_SINKS);
    let eight: Vec<_> = all_rows
        .chunks(share)
        .map(|c| Arc::new(checkpoints(c)))
        .collect();
    let mut seconds = [Vec::new(), Vec::new()];
    for round in 0..runs {
        for which in rotated(&[0usize, 1], round) {
            let shares = if which == 0 { &one } else { &eight };
            seconds[which].push(parallel_run(&rt, &runtime, &server, shares, round));
        }
    }
    let rate = |s: &Vec<f64>| -> Vec<f64> { s.iter().map(|s| total_rows as f64 / s).collect() };
    let (one_rate, eight_rate) = (rate(&seconds[0]), rate(&seconds[1]));
    let parallel_ratio = Spread::ratio_of(&eight_rate, &one_rate);
    let (one_rate, eight_rate) = (Spread::of(one_rate), Spread::of(eight_rate));
    println!(
        "\n{total_rows} rows, {runs} paired rounds ({}):",
        paired::LEGEND
    );
    println!(
        "  1 sink {} rows/s, {PARALLEL_SINKS} sinks at once {} rows/s, {PARALLEL_SINKS} / 1: {}",
        one_rate.rate(),
        eight_rate.rate(),
        parallel_ratio.ratio()
    );

    let connections_met = many.connections == Some(TARGET_CONNECTIONS);
    let all_opened = many.opened == many.asked;
    let open_met = all_opened && many.open_seconds < TARGET_OPEN_SECONDS;
    let memory_met = all_opened && many.peak_mib < TARGET_PEAK_MIB;
    let parallel_met = parallel_ratio.median >= TARGET_PARALLEL_RATIO;
    println!("\n| target | measured | |");
    println!("|---|---|---|");
    println!(
        "| {asked} sinks of one config share {TARGET_CONNECTIONS} connection | {} connections for {} sinks | {} |",
        many.connections.map_or("unknown".into(), |c| c.to_string()),
        many.opened,
        mark(connections_met)
    );
    println!(
        "| {asked} sinks open in under {TARGET_OPEN_SECONDS} s | {} in {:.2} s | {} |",
        many.opened,
        many.open_seconds,
        mark(open_met)
    );
    println!(
        "| peak RSS under {TARGET_PEAK_MIB} MiB | {:.1} MiB with {} sinks | {} |",
        many.peak_mib,
        many.opened,
        mark(memory_met)
    );
    println!(
        "| {PARALLEL_SINKS} sinks' total throughput ≥ {TARGET_PARALLEL_RATIO} of one sink's | {} | {} |",
        parallel_ratio.ratio(),
        mark(parallel_met)
    );
    println!(
        "| every row delivered (a subscriber's count) | {} of {expected_messages} | {} |",
        many.messages_in.map_or("unknown".into(), |m| m.to_string()),
        mark(delivered)
    );

    let report = json!({
        "shared_connections": shared, "pooling_allocator": pooling,
        "sinks_asked": many.asked, "sinks_opened": many.opened, "subjects": SUBJECTS,
        "stopped_early": many.stop.is_some(), "stop_reason": stop,
        "open_seconds": many.open_seconds, "open_ms_per_sink": open_per_sink_ms,
        "rss_mib": {
            "before_any_sink": many.rss_before_mib, "one_sink_written": many.rss_one_mib,
            "all_opened": many.rss_opened_mib, "all_written": many.rss_written_mib,
            "peak": many.peak_mib, "cap": rss_cap_mib,
        },
        "rss_kib_per_extra_sink": many.per_extra_sink_mib().map(|m| m * 1024.0),
        "server_connections": many.connections,
        "rows_per_sink": rows_per_sink, "rows_written": many.rows_written,
        "write_seconds": many.write_seconds, "write_rows_per_s": write_rate,
        "write_failures": many.write_failures,
        "messages_received": many.messages_in, "close_seconds": many.close_seconds,
        "parallel": {
            "sinks": PARALLEL_SINKS, "total_rows": total_rows, "rounds": runs,
            "one_sink_rows_per_s": one_rate.json(), "parallel_rows_per_s": eight_rate.json(),
            "parallel_to_one": parallel_ratio.json(),
        },
        "targets": {
            "connections": {"target": TARGET_CONNECTIONS, "met": connections_met},
            "open_seconds": {"target": TARGET_OPEN_SECONDS, "met": open_met},
            "peak_rss_mib": {"target": TARGET_PEAK_MIB, "met": memory_met},
            "parallel_to_one": {"target": TARGET_PARALLEL_RATIO, "met": parallel_met},
        },
    });
    let file = format!(
        "bench-scale{}{}.json",
        if shared { "" } else { "-unshared" },
        if pooling { "-pooled" } else { "" }
    );
    let path = target_dir().join(file);
    std::fs::write(&path, serde_json::to_string_pretty(&report).unwrap()).unwrap();
    println!("\nwritten to {}", path.display());
    // Measured and written first; a lost row is still a failure of the run.
    assert!(
        delivered,
        "a subscriber received {:?} messages, {expected_messages} were written",
        many.messages_in
    );
}
