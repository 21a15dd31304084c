//! `just bench`: the sink measured the way its users judge it, against baselines measured in
//! the same run. It starts its own `nats-server` on a free loopback port, prints a table and
//! writes it as JSON to `target/bench.json`.
//!
//! Modes, each publishing the same rows to the same server:
//! - raw: async-nats publishing payloads encoded beforehand (the ceiling on this machine);
//! - raw+id: the same, each message with a `Nats-Msg-Id` header as the sink sends by default;
//! - native: the guest's sink compiled natively over the host's transport (no wasm);
//! - component: the full sink through wasmtime;
//! - component (arrow): the same, the rows handed over as Arrow record batches
//!   (`Sink::write_arrow`: one IPC stream per call) instead of `rows`.
//!
//! Every mode writes rows in calls of `batch` rows and confirms every 4,096 rows (a flush:
//! JetStream acks, or a core round trip). The modes run in paired rounds (see
//! `support/paired.rs`): each round runs every mode of every cell once, in an order rotated
//! each round, and each figure is the median over `BENCH_RUNS` rounds (default 5) of
//! `BENCH_ROWS` rows (default 50,000), with its min–max spread. Ratios are taken round by round.

#[path = "support/agreement.rs"]
mod agreement;
#[path = "support/datasets.rs"]
mod datasets;
#[path = "support/encode.rs"]
mod encode;
#[path = "support/native.rs"]
mod native;
#[path = "support/paired.rs"]
mod paired;
#[path = "support/process.rs"]
mod process;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::Instant;

use datasets::*;
use encode::*;
use native::*;
use nats_sink::arrow_array::RecordBatch;
use nats_sink::transport::NatsConnection;
use nats_sink::{Column, Datum, Rows, RuntimeConfig, SinkRuntime};
use nats_sink_guest::bindings as guest;
use nats_sink_tests::arrow::record_batch;
use nats_sink_tests::memory::{self, MemoryHost};
use nats_sink_tests::{columns, component_path, pack, target_dir, to_guest_rows, NatsServer};
use paired::{rotated, Spread};
use process::*;
use serde_json::json;

/// Rows between confirmations, in every mode.
const CHECKPOINT_ROWS: usize = 4096;
const BATCHES: [usize; 3] = [1, 64, 1024];

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(samples: Vec<f64>) -> f64 {
    Spread::of(samples).median
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Route {
    Core,
    JetStream,
}

impl Route {
    fn name(self) -> &'static str {
        match self {
            Route::Core => "core",
            Route::JetStream => "jetstream",
        }
    }
}

struct Bench {
    runtime: tokio::runtime::Runtime,
    server: NatsServer,
    sink_runtime: SinkRuntime,
    client: async_nats::Client,
    /// A fresh subject (and stream) per run, so no run sees another's messages or ids.
    serial: usize,
}

impl Bench {
    /// Seconds for one run of `mode` over `data`.
    fn run(&mut self, data: &Dataset, route: Route, batch: usize, mode: Mode) -> f64 {
        match mode {
            Mode::Raw => self.raw(data, route, false),
            Mode::RawIds => self.raw(data, route, true),
            Mode::Native => self.native(data, route, batch),
            Mode::Component => self.component(data, route, batch),
            Mode::ComponentArrow => self.component_arrow(data, route, batch),
            Mode::ComponentNoIds => self.component_with(data, route, batch, &[("dedupe", "false")]),
        }
    }

    /// A subject for one run; on JetStream, a fresh file-storage stream captures it.
    fn subject(&mut self, route: Route) -> String {
        self.serial += 1;
        let subject = format!("bench.{}.{}", route.name(), self.serial);
        if route == Route::JetStream {
            let client = self.client.clone();
            self.runtime.block_on(async {
                let js = async_nats::jetstream::new(client);
                js.create_stream(NatsServer::stream_config(
                    &format!("BENCH{}", self.serial),
                    &[&subject],
                ))
                .await
                .expect("a bench stream")
            });
        }
        subject
    }

    fn drop_stream(&self, route: Route) {
        if route == Route::JetStream {
            let client = self.client.clone();
            let name = format!("BENCH{}", self.serial);
            let _ = self.runtime.block_on(async move {
                async_nats::jetstream::new(client).delete_stream(name).await
            });
        }
    }

    /// Seconds to publish every payload, encoded beforehand, with async-nats alone. With
    /// `ids`, each message also carries a `Nats-Msg-Id` header like the sink's, built as it is
    /// sent (each chunk a checkpoint, so that no id repeats).
    fn raw(&mut self, data: &Dataset, route: Route, ids: bool) -> f64 {
        let subject = self.subject(route);
        let client = self.client.clone();
        let payloads: Vec<bytes::Bytes> = data
            .payloads
            .iter()
            .map(|p| bytes::Bytes::from(p.clone()))
            .collect();
        let headers = move |checkpoint: usize, position: usize| {
            let mut headers = async_nats::HeaderMap::new();
            let id = format!("bench-0123456789abcdef:{checkpoint}:{position}");
            headers.insert("Nats-Msg-Id", id.as_str());
            headers
        };
        let seconds = self.runtime.block_on(async move {
            let started = Instant::now();
            match route {
                Route::Core => {
                    for (checkpoint, chunk) in payloads.chunks(CHECKPOINT_ROWS).enumerate() {
                        for (position, p) in chunk.iter().enumerate() {
                            let (subject, p) = (subject.clone(), p.clone());
                            if ids {
                                let headers = headers(checkpoint, position);
                                client.publish_with_headers(subject, headers, p).await
                            } else {
                                client.publish(subject, p).await
                            }
                            .unwrap();
                        }
                        client.flush().await.unwrap();
                    }
                }
                Route::JetStream => {
                    let js = async_nats::jetstream::new(client);
                    for (checkpoint, chunk) in payloads.chunks(CHECKPOINT_ROWS).enumerate() {
                        let mut acks = Vec::with_capacity(chunk.len());
                        for (position, p) in chunk.iter().enumerate() {
                            let (subject, p) = (subject.clone(), p.clone());
                            let ack = if ids {
                                let headers = headers(checkpoint, position);
                                js.publish_with_headers(subject, headers, p).await
                            } else {
                                js.publish(subject, p).await
                            };
                            acks.push(ack.unwrap());
                        }
                        for ack in acks {
                            ack.await.unwrap();
                        }
                    }
                }
            }
            started.elapsed().as_secs_f64()
        });
        self.drop_stream(route);
        seconds
    }

    /// Seconds for the natively compiled sink over the host's transport.
    fn native(&mut self, data: &Dataset, route: Route, batch: usize) -> f64 {
        let subject = self.subject(route);
        let url = self.server.url();
        let opts = options(&url, &subject, &[]);
        let config =
            nats_sink_guest::options::SinkConfig::parse(&opts).expect("valid bench options");
        let connect = to_host_connect(nats_sink_guest::connect_config(&config));
        let connection = self
            .runtime
            .block_on(NatsConnection::connect(connect))
            .expect("connect");
        let transport = Blocking {
            runtime: &self.runtime,
            connection,
        };
        let guest_columns: Vec<guest::Column> = data
            .columns
            .iter()
            .map(|c| guest::Column {
                name: c.name.clone(),
                data_type: c.data_type.clone(),
            })
            .collect();
        let (config, schema) = nats_sink_guest::sink::prepare(&opts, &guest_columns).unwrap();
        let mut sink = nats_sink_guest::sink::Publisher::new(config, schema, transport);
        let checkpoints: Vec<Vec<guest::Rows>> = data
            .packed(batch)
            .iter()
            .map(|batches| batches.iter().map(to_guest_rows).collect())
            .collect();
        let started = Instant::now();
        for (checkpoint, batches) in checkpoints.iter().enumerate() {
            sink.begin_checkpoint(checkpoint as u64);
            for rows in batches {
                sink.write(rows).expect("native write");
            }
            sink.flush().expect("native flush");
        }
        let seconds = started.elapsed().as_secs_f64();
        drop(sink);
        self.drop_stream(route);
        seconds
    }

    /// Seconds for the component through wasmtime.
    fn component(&mut self, data: &Dataset, route: Route, batch: usize) -> f64 {
        self.component_with(data, route, batch, &[])
    }

    /// Seconds for the component through wasmtime, fed Arrow record batches.
    fn component_arrow(&mut self, data: &Dataset, route: Route, batch: usize) -> f64 {
        let subject = self.subject(route);
        let opts = options(&self.server.url(), &subject, &[]);
        let sink_runtime = self.sink_runtime.clone();
        let checkpoints = data.arrow(batch);
        let seconds = self.runtime.block_on(async move {
            let mut sink = sink_runtime.open(&opts, &data.columns).await.expect("open");
            let started = Instant::now();
            for (checkpoint, batches) in checkpoints.iter().enumerate() {
                sink.begin_checkpoint(checkpoint as u64).await.unwrap();
                for batch in batches {
                    sink.write_arrow(batch)
                        .await
                        .expect("component write_arrow");
                }
                sink.flush().await.expect("component flush");
            }
            let seconds = started.elapsed().as_secs_f64();
            sink.close().await.unwrap();
            seconds
        });
        self.drop_stream(route);
        seconds
    }

    /// `component`, with more options.
    fn component_with(
        &mut self,
        data: &Dataset,
        route: Route,
        batch: usize,
        extra: &[(&str, &str)],
    ) -> f64 {
        let subject = self.subject(route);
        let opts = options(&self.server.url(), &subject, extra);
        let sink_runtime = self.sink_runtime.clone();
        let checkpoints = data.packed(batch);
        let seconds = self.runtime.block_on(async move {
            let mut sink = sink_runtime.open(&opts, &data.columns).await.expect("open");
            let started = Instant::now();
            for (checkpoint, batches) in checkpoints.iter().enumerate() {
                sink.begin_checkpoint(checkpoint as u64).await.unwrap();
                for rows in batches {
                    sink.write(rows).await.expect("component write");
                }
                sink.flush().await.expect("component flush");
            }
            let seconds = started.elapsed().as_secs_f64();
            sink.close().await.unwrap();
            seconds
        });
        self.drop_stream(route);
        seconds
    }
}

/// What one run measures; every cell runs several, paired in rounds.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Mode {
    Raw,
    RawIds,
    Native,
    Component,
    /// The component fed Arrow record batches.
    ComponentArrow,
    /// The component with `dedupe=false`: no message ids, against raw.
    ComponentNoIds,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Raw => "raw",
            Mode::RawIds => "raw_with_ids",
            Mode::Native => "native",
            Mode::Component => "component",
            Mode::ComponentArrow => "component_arrow",
            Mode::ComponentNoIds => "component_without_ids",
        }
    }
}

/// The ratios each throughput cell reports: JSON key, column, numerator, denominator (rates).
const RATIOS: [(&str, &str, Mode, Mode); 7] = [
    (
        "component_to_native",
        "comp/native",
        Mode::Component,
        Mode::Native,
    ),
    ("component_to_raw", "comp/raw", Mode::Component, Mode::Raw),
    (
        "component_to_raw_with_ids",
        "comp/raw+id",
        Mode::Component,
        Mode::RawIds,
    ),
    (
        "component_arrow_to_native",
        "arrow/native",
        Mode::ComponentArrow,
        Mode::Native,
    ),
    (
        "component_arrow_to_raw_with_ids",
        "arrow/raw+id",
        Mode::ComponentArrow,
        Mode::RawIds,
    ),
    ("native_to_raw", "native/raw", Mode::Native, Mode::Raw),
    ("raw_with_ids_to_raw", "raw+id/raw", Mode::RawIds, Mode::Raw),
];

/// One dataset, route and batch size, and the seconds of each of its modes, round by round.
struct Cell {
    data: usize,
    route: Route,
    batch: usize,
    modes: Vec<Mode>,
    seconds: HashMap<Mode, Vec<f64>>,
}

impl Cell {
    /// Rows per second of `mode`, round by round.
    fn rates(&self, mode: Mode, rows: usize) -> Vec<f64> {
        self.seconds[&mode]
            .iter()
            .map(|s| rows as f64 / s)
            .collect()
    }

    fn rate(&self, mode: Mode, rows: usize) -> Spread {
        Spread::of(self.rates(mode, rows))
    }

    fn ratio(&self, numerator: Mode, denominator: Mode, rows: usize) -> Spread {
        Spread::ratio_of(&self.rates(numerator, rows), &self.rates(denominator, rows))
    }
}

/// Medians as flat keys (as before pairing), and every spread and per-round sample beside them.
fn figures_json(figures: &[(&str, &Spread)]) -> serde_json::Map<String, serde_json::Value> {
    let mut out = serde_json::Map::new();
    let mut spreads = serde_json::Map::new();
    for (key, spread) in figures {
        out.insert(key.to_string(), json!(spread.median));
        spreads.insert(key.to_string(), spread.json());
    }
    out.insert("spreads".into(), spreads.into());
    out
}

/// Prints the encoding-alone table and returns its entries for `target/bench.json`.
fn encode_table(
    datasets: &[Dataset],
    encode_seconds: &[HashMap<EncodeMode, Vec<f64>>],
) -> Vec<serde_json::Value> {
    println!("\nencoding alone (batches of 1024, transport drops the messages), paired rounds");
    let mut encode = Vec::new();
    for (d, data) in datasets.iter().enumerate() {
        let n = data.rows.len();
        let seconds = &encode_seconds[d];
        let rates = |mode| -> Vec<f64> { seconds[&mode].iter().map(|s| n as f64 / s).collect() };
        let micros =
            |mode| -> Spread { Spread::of(seconds[&mode].iter().map(|s| s * 1e6).collect()) };
        let native = Spread::of(rates(EncodeMode::Native));
        let wasm = Spread::of(rates(EncodeMode::Wasm));
        let ratio = Spread::ratio_of(&rates(EncodeMode::Wasm), &rates(EncodeMode::Native));
        let native_arrow = Spread::of(rates(EncodeMode::NativeArrow));
        let wasm_arrow = Spread::of(rates(EncodeMode::WasmArrow));
        let arrow_ratio =
            Spread::ratio_of(&rates(EncodeMode::WasmArrow), &rates(EncodeMode::Native));
        let (empty_native, empty_wasm) = (
            micros(EncodeMode::EmptyNative),
            micros(EncodeMode::EmptyWasm),
        );
        println!(
            "{:<10} native {:<22} wasm {:<22} wasm/native {:<19} empty write µs: native {:.2} ({:.2}–{:.2}), component {:.2} ({:.2}–{:.2})",
            data.short,
            native.rate(),
            wasm.rate(),
            ratio.ratio(),
            empty_native.median,
            empty_native.min,
            empty_native.max,
            empty_wasm.median,
            empty_wasm.min,
            empty_wasm.max,
        );
        println!(
            "{:<10} through Arrow: native {:<22} wasm {:<22} wasm (arrow)/native (rows) {}",
            data.short,
            native_arrow.rate(),
            wasm_arrow.rate(),
            arrow_ratio.ratio(),
        );
        let mut entry = figures_json(&[
            ("native_rows_per_s", &native),
            ("wasm_rows_per_s", &wasm),
            ("wasm_to_native", &ratio),
            ("empty_write_native_us", &empty_native),
            ("empty_write_component_us", &empty_wasm),
            ("native_arrow_rows_per_s", &native_arrow),
            ("wasm_arrow_rows_per_s", &wasm_arrow),
            ("wasm_arrow_to_native", &arrow_ratio),
        ]);
        entry.insert("dataset".into(), json!(data.name));
        encode.push(serde_json::Value::from(entry));
    }

    encode
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is taken from the command line.
    let rows = env_number("BENCH_ROWS", 50_000);
    let runs = env_number("BENCH_RUNS", 5).max(1);
    let memory_rows = env_number("BENCH_MEMORY_ROWS", 1_000_000);
    // BENCH_ONLY=encode: only the encoding-alone rounds (no server modes, start-up or memory),
    // to iterate on the encoder; the table is printed and `target/bench.json` left alone.
    let encode_only = std::env::var("BENCH_ONLY").is_ok_and(|only| only == "encode");
    // Checked first, so a full run fails before its rounds rather than after.
    let cli = if encode_only || std::env::var_os("BENCH_PROFILE").is_some() {
        PathBuf::new()
    } else {
        release_cli()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = NatsServer::with_config("jetstream { store_dir: \"{dir}/js\" }\nmax_payload: 8MB");
    let client = runtime.block_on(server.client());
    let sink_runtime = SinkRuntime::load(component_path()).expect("load the component");
    let mut bench = Bench {
        runtime,
        server,
        sink_runtime,
        client,
        serial: 0,
    };
    let host = MemoryHost::load(&component_path()).expect("load the component");
    let encode_rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    // BENCH_PROFILE: a steady load for `perf record`, on the realistic rows, core NATS, batch
    // 1024. `encode`: encoding alone (`encode-native`, `encode-wasm`, `encode-wasm-arrow`: one
    // side of it); `raw`, `native` or `component`: that mode alone; any other value: native
    // and component in turn.
    if let Ok(profile) = std::env::var("BENCH_PROFILE") {
        let data = realistic(rows);
        let input = EncodeInput::new(&data);
        for _ in 0..runs {
            let rate = |seconds: f64| rows as f64 / seconds;
            let show = |mode: &str, bench: &mut Bench| {
                let seconds = match mode {
                    "raw" => bench.raw(&data, Route::Core, false),
                    "native" => bench.native(&data, Route::Core, 1024),
                    _ => bench.component(&data, Route::Core, 1024),
                };
                println!("{mode} {:.0} rows/s", rate(seconds));
            };
            match profile.as_str() {
                "encode-native" | "encode-wasm" | "encode-wasm-arrow" => {
                    let mode = match profile.as_str() {
                        "encode-native" => EncodeMode::Native,
                        "encode-wasm" => EncodeMode::Wasm,
                        _ => EncodeMode::WasmArrow,
                    };
                    let seconds = encode_run(&encode_rt, &host, &data, &input, mode);
                    println!("{profile} {:.0} rows/s", rate(seconds));
                }
                "encode" => {
                    let run = |mode| encode_run(&encode_rt, &host, &data, &input, mode);
                    let native = rate(run(EncodeMode::Native));
                    let wasm = rate(run(EncodeMode::Wasm));
                    println!("encode: native {native:.0} rows/s, wasm {wasm:.0} rows/s");
                }
                "raw" | "native" | "component" => show(&profile, &mut bench),
                _ => {
                    show("native", &mut bench);
                    show("component", &mut bench);
                }
            }
        }
        return;
    }
    let datasets = [realistic(rows), small(rows)];
    let inputs: Vec<EncodeInput> = datasets.iter().map(EncodeInput::new).collect();
    let report_path = target_dir().join("bench.json");
    // Read before this run overwrites it, to say whether the two runs agree.
    let previous: Option<serde_json::Value> = std::fs::read_to_string(&report_path)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok());

    println!(
        "nats-sink benchmark: {rows} rows per run, {runs} paired rounds, confirmed every {CHECKPOINT_ROWS} rows"
    );
    println!(
        "each round runs every mode of every cell once, the order rotated each round; ratios are taken per round"
    );
    let mut cells = Vec::new();
    for data in (0..datasets.len()).filter(|_| !encode_only) {
        for route in [Route::Core, Route::JetStream] {
            for batch in BATCHES {
                let mut modes = vec![
                    Mode::Raw,
                    Mode::RawIds,
                    Mode::Native,
                    Mode::Component,
                    Mode::ComponentArrow,
                ];
                if route == Route::Core && batch == 1024 {
                    modes.push(Mode::ComponentNoIds);
                }
                cells.push(Cell {
                    data,
                    route,
                    batch,
                    modes,
                    seconds: HashMap::new(),
                });
            }
        }
    }
    let mut encode_seconds: Vec<HashMap<EncodeMode, Vec<f64>>> =
        vec![HashMap::new(); datasets.len()];
    for round in 0..runs {
        eprintln!("round {} of {runs}", round + 1);
        for cell in &mut cells {
            let data = &datasets[cell.data];
            for mode in rotated(&cell.modes, round) {
                let seconds = bench.run(data, cell.route, cell.batch, mode);
                cell.seconds.entry(mode).or_default().push(seconds);
            }
        }
        for (d, data) in datasets.iter().enumerate() {
            for mode in rotated(&ENCODE_MODES, round) {
                let seconds = encode_run(&encode_rt, &host, data, &inputs[d], mode);
                encode_seconds[d].entry(mode).or_default().push(seconds);
            }
        }
    }

    if encode_only {
        encode_table(&datasets, &encode_seconds);
        return;
    }

    println!("\nrows/s ({})", paired::LEGEND);
    println!(
        "{:<10} {:<9} {:>5}  {:<22} {:<22} {:<22} {:<22} {:<22}",
        "rows", "route", "batch", "raw", "raw+id", "native", "component", "component (arrow)"
    );
    for cell in &cells {
        let data = &datasets[cell.data];
        let n = data.rows.len();
        let rate = |mode| cell.rate(mode, n).rate();
        println!(
            "{:<10} {:<9} {:>5}  {:<22} {:<22} {:<22} {:<22} {:<22}",
            data.short,
            cell.route.name(),
            cell.batch,
            rate(Mode::Raw),
            rate(Mode::RawIds),
            rate(Mode::Native),
            rate(Mode::Component),
            rate(Mode::ComponentArrow),
        );
    }
    println!("\nratios of rows/s, per round ({})", paired::LEGEND);
    print!("{:<10} {:<9} {:>5} ", "rows", "route", "batch");
    for (_, column, _, _) in RATIOS {
        print!(" {column:<19}");
    }
    println!();
    let mut results = Vec::new();
    for cell in &cells {
        let data = &datasets[cell.data];
        let n = data.rows.len();
        print!(
            "{:<10} {:<9} {:>5} ",
            data.short,
            cell.route.name(),
            cell.batch
        );
        let rates: Vec<(&str, Spread)> = [
            Mode::Raw,
            Mode::RawIds,
            Mode::Native,
            Mode::Component,
            Mode::ComponentArrow,
        ]
        .into_iter()
        .map(|m| (m.name(), cell.rate(m, n)))
        .collect();
        let ratios: Vec<(&str, Spread)> = RATIOS
            .iter()
            .map(|(key, _, a, b)| (*key, cell.ratio(*a, *b, n)))
            .collect();
        for (_, ratio) in &ratios {
            print!(" {:<19}", ratio.ratio());
        }
        println!();
        let rate_keys = [
            "raw_rows_per_s",
            "raw_with_ids_rows_per_s",
            "native_rows_per_s",
            "component_rows_per_s",
            "component_arrow_rows_per_s",
        ];
        let mut figures: Vec<(&str, &Spread)> = rate_keys
            .iter()
            .zip(&rates)
            .map(|(k, (_, s))| (*k, s))
            .collect();
        figures.extend(ratios.iter().map(|(k, s)| (*k, s)));
        let mut entry = figures_json(&figures);
        let mb = data.bytes as f64 / 1e6;
        let median_rate = |i: usize| rates[i].1.median;
        entry.extend([
            ("dataset".into(), json!(data.name)),
            ("route".into(), json!(cell.route.name())),
            ("batch".into(), json!(cell.batch)),
            ("rows".into(), json!(n)),
            ("payload_mb".into(), json!(mb)),
            ("raw_mb_per_s".into(), json!(median_rate(0) * mb / n as f64)),
            (
                "native_mb_per_s".into(),
                json!(median_rate(2) * mb / n as f64),
            ),
            (
                "component_mb_per_s".into(),
                json!(median_rate(3) * mb / n as f64),
            ),
            (
                "seconds_per_round".into(),
                cell.seconds
                    .iter()
                    .map(|(m, s)| (m.name().to_string(), json!(s)))
                    .collect(),
            ),
        ]);
        results.push(serde_json::Value::from(entry));
    }

    println!("\nwithout message ids (dedupe=false), core, batch 1024, paired with raw in the same rounds");
    let mut without_ids = Vec::new();
    for cell in cells
        .iter()
        .filter(|c| c.modes.contains(&Mode::ComponentNoIds))
    {
        let data = &datasets[cell.data];
        let n = data.rows.len();
        let raw = cell.rate(Mode::Raw, n);
        let component = cell.rate(Mode::ComponentNoIds, n);
        let ratio = cell.ratio(Mode::ComponentNoIds, Mode::Raw, n);
        println!(
            "{:<10} raw {:<22} component {:<22} component/raw {}",
            data.short,
            raw.rate(),
            component.rate(),
            ratio.ratio(),
        );
        let mut entry = figures_json(&[
            ("raw_rows_per_s", &raw),
            ("component_rows_per_s", &component),
            ("component_to_raw", &ratio),
        ]);
        entry.insert("dataset".into(), json!(data.name));
        without_ids.push(serde_json::Value::from(entry));
    }

    let encode = encode_table(&datasets, &encode_seconds);

    let startup = startup(runs, &cli);
    println!("\nstart-up: {startup}");
    let (peak_mib, memory_rate) = peak_memory(&cli, &bench.server, memory_rows);
    println!(
        "peak memory of `nats-sink run` over {memory_rows} realistic rows from a file (core NATS): {peak_mib:.1} MiB ({memory_rate:.0} rows/s)"
    );

    let format_rows = env_number("BENCH_FORMAT_ROWS", 200_000);
    let (jsonl_rate, parquet_rate, parquet_to_jsonl) =
        cli_input_formats(&cli, &bench.server, format_rows, runs);
    println!(
        "\nthe CLI over {format_rows} realistic rows (core NATS, whole processes): JSON Lines {}, Parquet {}, Parquet/JSON Lines {}\n{}",
        jsonl_rate.rate(),
        parquet_rate.rate(),
        parquet_to_jsonl.ratio(),
        paired::LEGEND,
    );

    let report = json!({
        "rows_per_run": rows, "runs": runs, "paired_rounds": runs,
        "order": "every mode of every cell once per round, rotated by one each round",
        "wide_spread_over": paired::WIDE,
        "checkpoint_rows": CHECKPOINT_ROWS,
        "throughput": results, "without_ids": without_ids, "encode": encode, "startup": startup,
        "peak_memory": {"rows": memory_rows, "peak_mib": peak_mib, "rows_per_s": memory_rate},
        "cli_input_formats": {"rows": format_rows, "jsonl_rows_per_s": jsonl_rate.json(),
            "parquet_rows_per_s": parquet_rate.json(), "parquet_to_jsonl": parquet_to_jsonl.json()},
    });
    match &previous {
        Some(previous) => agreement::print(previous, &report),
        None => println!("\nno earlier target/bench.json to compare with"),
    }
    std::fs::write(&report_path, serde_json::to_string_pretty(&report).unwrap()).unwrap();
    println!("\nwritten to {}", report_path.display());
}
