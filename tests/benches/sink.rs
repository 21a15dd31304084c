//! `just bench`: the sink measured the way its users judge it, against baselines measured in
//! the same run. It starts its own `nats-server` on a free loopback port, prints a table and
//! writes it as JSON to `target/bench.json`.
//!
//! Modes, each publishing the same rows to the same server:
//! - raw: async-nats publishing payloads encoded beforehand (the ceiling on this machine);
//! - raw+id: the same, each message with a `Nats-Msg-Id` header as the sink sends by default;
//! - native: the guest's sink compiled natively over the host's transport (no wasm);
//! - component: the full sink through wasmtime.
//!
//! Every mode writes rows in calls of `batch` rows and confirms every 4,096 rows (a flush:
//! JetStream acks, or a core round trip). The modes run in paired rounds (see
//! `support/paired.rs`): each round runs every mode of every cell once, in an order rotated
//! each round, and each figure is the median over `BENCH_RUNS` rounds (default 5) of
//! `BENCH_ROWS` rows (default 50,000), with its min–max spread. Ratios are taken round by round.

#[path = "support/agreement.rs"]
mod agreement;
#[path = "support/paired.rs"]
mod paired;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::Instant;

use nats_sink::transport::NatsConnection;
use nats_sink::{Column, Datum, Rows, RuntimeConfig, SinkRuntime};
use nats_sink_guest::bindings as guest;
use nats_sink_tests::memory::{self, MemoryHost};
use nats_sink_tests::{columns, component_path, pack, target_dir, to_guest_rows, NatsServer};
use paired::{rotated, Spread};
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

/// A fixed set of rows in the three shapes the modes need.
struct Dataset {
    name: &'static str,
    /// The name in tables.
    short: &'static str,
    columns: Vec<Column>,
    rows: Vec<Vec<Datum>>,
    /// Each row's JSON as the sink encodes it, for the raw mode.
    payloads: Vec<Vec<u8>>,
    bytes: usize,
}

/// About 12 columns of mixed types, about 300 bytes of JSON per row.
fn realistic(count: usize) -> Dataset {
    let columns = columns(&[
        ("order_id", "bigint"),
        ("customer", "varchar"),
        ("amount", "numeric"),
        ("quantity", "integer"),
        ("unit_price", "double precision"),
        ("created_at", "timestamptz"),
        ("ship_date", "date"),
        ("status", "varchar"),
        ("tags", "varchar[]"),
        ("gift", "boolean"),
        ("attributes", "jsonb"),
        ("ref", "uuid"),
    ]);
    let statuses = ["new", "paid", "shipped", "delivered", "returned"];
    let rows = (0..count as i64)
        .map(|i| {
            vec![
                Datum::Bigint(1_000_000 + i),
                Datum::Varchar(format!("customer-{:06}@example.com", i * 7919 % 1_000_000)),
                Datum::Numeric(format!("{}.{:02}", i % 10_000, i % 100)),
                Datum::Integer((i % 17) as i32 + 1),
                Datum::Double((i % 1000) as f64 * 0.25 + 0.99),
                Datum::Timestamptz(1_700_000_000_000_000 + i * 1_000_003),
                Datum::Date(19_700 + (i % 365) as i32),
                Datum::Varchar(statuses[i as usize % statuses.len()].to_string()),
                Datum::List(vec![
                    Datum::Varchar("priority".into()),
                    Datum::Varchar(format!("region-{}", i % 12)),
                ]),
                Datum::Boolean(i % 3 == 0),
                Datum::Jsonb(format!(
                    r#"{{"channel":"web","campaign":"c{}","score":{}}}"#,
                    i % 50,
                    i % 97
                )),
                Datum::Uuid(0x5f0e_1b2c_3d4e_4f50_8a9b_0c1d_2e3f_4a5b ^ i as u128),
            ]
        })
        .collect();
    Dataset::new("realistic (12 columns)", "realistic", columns, rows)
}

/// Three columns.
fn small(count: usize) -> Dataset {
    let columns = columns(&[("id", "bigint"), ("name", "varchar"), ("ok", "boolean")]);
    let rows = (0..count as i64)
        .map(|i| {
            vec![
                Datum::Bigint(i),
                Datum::Varchar(format!("row-{i}")),
                Datum::Boolean(i % 2 == 0),
            ]
        })
        .collect();
    Dataset::new("small (3 columns)", "small", columns, rows)
}

impl Dataset {
    fn new(
        name: &'static str,
        short: &'static str,
        columns: Vec<Column>,
        datums: Vec<Vec<Datum>>,
    ) -> Dataset {
        // Encode once with the guest's own sink, so raw publishes the very same bytes.
        let keep = Discard {
            keep: true,
            ..Discard::default()
        };
        let mut sink = native_sink(&columns, &[], keep);
        sink.write(&to_guest_rows(&pack(&datums)))
            .expect("the dataset encodes");
        let payloads = sink.transport().kept.clone();
        assert_eq!(payloads.len(), datums.len());
        let bytes = payloads.iter().map(Vec::len).sum();
        Dataset {
            name,
            short,
            columns,
            rows: datums,
            payloads,
            bytes,
        }
    }

    /// The rows packed as `write` takes them, before any clock starts: per checkpoint, batches
    /// of `batch` rows.
    fn packed(&self, batch: usize) -> Vec<Vec<Rows>> {
        self.rows
            .chunks(CHECKPOINT_ROWS)
            .map(|checkpoint| checkpoint.chunks(batch).map(pack).collect())
            .collect()
    }
}

/// A transport for the native sink that keeps or drops what it is given.
#[derive(Default)]
struct Discard {
    keep: bool,
    kept: Vec<Vec<u8>>,
    messages: u64,
}

impl nats_sink_guest::sink::Transport for Discard {
    fn publish(&mut self, batch: guest::Batch) -> Result<(), guest::TransportError> {
        self.messages += batch.messages.len() as u64;
        if self.keep {
            let messages = nats_sink_guest::batch::unpack(&batch).expect("a well-formed batch");
            self.kept.extend(messages.into_iter().map(|m| m.payload));
        }
        Ok(())
    }
    fn flush(&mut self) -> Result<(), guest::TransportError> {
        Ok(())
    }
    /// No server: nats-server's default, which the benchmark's rows are far below.
    fn max_payload(&mut self) -> u64 {
        1 << 20
    }
}

fn options(url: &str, subject: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    [
        ("server_url", url),
        ("subject", subject),
        ("connect_mode", "plain"),
    ]
    .iter()
    .chain(extra)
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn native_sink<T: nats_sink_guest::sink::Transport>(
    columns: &[Column],
    extra: &[(&str, &str)],
    transport: T,
) -> nats_sink_guest::sink::Publisher<T> {
    let guest_columns: Vec<guest::Column> = columns
        .iter()
        .map(|c| guest::Column {
            name: c.name.clone(),
            data_type: c.data_type.clone(),
        })
        .collect();
    let (config, schema) =
        nats_sink_guest::sink::prepare(&options("127.0.0.1:4222", "bench", extra), &guest_columns)
            .expect("valid bench options");
    nats_sink_guest::sink::Publisher::new(config, schema, transport)
}

/// The host's transport, driven synchronously as the native sink's `Transport`.
struct Blocking<'a> {
    runtime: &'a tokio::runtime::Runtime,
    connection: NatsConnection,
}

/// The same batch in the host's generated types (both come from the one WIT record).
fn to_host_batch(b: guest::Batch) -> nats_sink::bindings::transport::Batch {
    use nats_sink::bindings::transport as h;
    let span = |s: guest::Span| h::Span {
        start: s.start,
        len: s.len,
    };
    h::Batch {
        data: b.data,
        header_names: b.header_names,
        headers: b
            .headers
            .into_iter()
            .map(|x| h::Header {
                name: x.name,
                value: span(x.value),
            })
            .collect(),
        messages: b
            .messages
            .into_iter()
            .map(|m| h::Message {
                subject: span(m.subject),
                payload: span(m.payload),
                headers: span(m.headers),
            })
            .collect(),
    }
}

fn to_guest_error(e: nats_sink::bindings::transport::TransportError) -> guest::TransportError {
    use nats_sink::bindings::transport::TransportError as H;
    match e {
        H::Connection(m) => guest::TransportError::Connection(m),
        H::Publish(m) => guest::TransportError::Publish(m),
        H::Timeout(m) => guest::TransportError::Timeout(m),
    }
}

impl nats_sink_guest::sink::Transport for Blocking<'_> {
    fn publish(&mut self, batch: guest::Batch) -> Result<(), guest::TransportError> {
        self.runtime
            .block_on(self.connection.publish(to_host_batch(batch)))
            .map_err(to_guest_error)
    }
    fn flush(&mut self) -> Result<(), guest::TransportError> {
        self.runtime
            .block_on(self.connection.flush())
            .map_err(to_guest_error)
    }
    fn max_payload(&mut self) -> u64 {
        self.connection.max_payload()
    }
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

fn to_host_connect(c: guest::ConnectConfig) -> nats_sink::bindings::transport::ConnectConfig {
    use nats_sink::bindings::transport as h;
    h::ConnectConfig {
        servers: c.servers,
        auth: match c.auth {
            guest::Auth::None => h::Auth::None,
            guest::Auth::UserPassword(up) => h::Auth::UserPassword(h::UserPassword {
                username: up.username,
                password: up.password,
            }),
            guest::Auth::Credential(cr) => h::Auth::Credential(h::Credential {
                jwt: cr.jwt,
                nkey_seed: cr.nkey_seed,
            }),
            guest::Auth::Token(token) => h::Auth::Token(token),
            guest::Auth::CredentialsFile(path) => h::Auth::CredentialsFile(path),
            guest::Auth::Nkey(seed) => h::Auth::Nkey(seed),
        },
        tls: c.tls.map(|tls| h::Tls {
            ca_file: tls.ca_file,
            cert_file: tls.cert_file,
            key_file: tls.key_file,
        }),
        connect_timeout_ms: c.connect_timeout_ms,
        flush_timeout_ms: c.flush_timeout_ms,
        delivery: h::Delivery {
            ack_timeout_ms: c.delivery.ack_timeout_ms,
            max_in_flight: c.delivery.max_in_flight,
            max_attempts: c.delivery.max_attempts,
            max_elapsed_ms: c.delivery.max_elapsed_ms,
            initial_backoff_ms: c.delivery.initial_backoff_ms,
            max_backoff_ms: c.delivery.max_backoff_ms,
        },
        create_stream: c.create_stream.map(|r| h::StreamRequest {
            name: r.name,
            subject: r.subject,
            max_bytes: r.max_bytes,
            max_messages: r.max_messages,
            max_messages_per_subject: r.max_messages_per_subject,
            max_consumers: r.max_consumers,
            max_message_size: r.max_message_size,
        }),
    }
}

/// One `write` crossing with no rows is timed over this many calls.
const EMPTY_CALLS: usize = 20_000;

/// Encoding alone, each measured once per round: the native sink and the component over
/// transports that drop what they get, and one `write` crossing with no rows.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum EncodeMode {
    Native,
    Wasm,
    EmptyNative,
    EmptyWasm,
}

const ENCODE_MODES: [EncodeMode; 4] = [
    EncodeMode::Native,
    EncodeMode::Wasm,
    EncodeMode::EmptyNative,
    EncodeMode::EmptyWasm,
];

/// The rows of a dataset in batches of 1,024, in the shapes both encoders take.
struct EncodeInput {
    guest_rows: Vec<guest::Rows>,
    memory_rows: Vec<memory::Rows>,
    columns: Vec<memory::Column>,
}

impl EncodeInput {
    fn new(data: &Dataset) -> EncodeInput {
        let packed: Vec<Rows> = data.rows.chunks(1024).map(pack).collect();
        EncodeInput {
            guest_rows: packed.iter().map(to_guest_rows).collect(),
            memory_rows: packed.clone(),
            columns: data
                .columns
                .iter()
                .map(|c| memory::Column {
                    name: c.name.clone(),
                    data_type: c.data_type.clone(),
                })
                .collect(),
        }
    }
}

/// Seconds for one run of `mode` (for the empty writes, seconds per call).
fn encode_run(
    rt: &tokio::runtime::Runtime,
    host: &MemoryHost,
    data: &Dataset,
    input: &EncodeInput,
    mode: EncodeMode,
) -> f64 {
    match mode {
        EncodeMode::Native => {
            let mut sink = native_sink(&data.columns, &[], Discard::default());
            let started = Instant::now();
            for rows in &input.guest_rows {
                sink.write(rows).unwrap();
            }
            let seconds = started.elapsed().as_secs_f64();
            assert_eq!(sink.transport().messages as usize, data.rows.len());
            seconds
        }
        EncodeMode::EmptyNative => {
            let mut sink = native_sink(&data.columns, &[], Discard::default());
            let started = Instant::now();
            for _ in 0..EMPTY_CALLS {
                sink.write(&guest::Rows::new()).unwrap();
            }
            started.elapsed().as_secs_f64() / EMPTY_CALLS as f64
        }
        EncodeMode::Wasm | EncodeMode::EmptyWasm => rt.block_on(async {
            let mut instance = host.instance().await.unwrap();
            instance.recorder.discard.store(true, Ordering::Relaxed);
            let opts = options("127.0.0.1:4222", "bench", &[]);
            let sink = instance.open(&opts, &input.columns).await.unwrap().unwrap();
            if mode == EncodeMode::Wasm {
                let started = Instant::now();
                for rows in &input.memory_rows {
                    instance.write(sink, rows).await.unwrap().unwrap();
                }
                let seconds = started.elapsed().as_secs_f64();
                assert_eq!(
                    instance.recorder.messages.load(Ordering::Relaxed) as usize,
                    data.rows.len()
                );
                seconds
            } else {
                let empty = Rows::new();
                let started = Instant::now();
                for _ in 0..EMPTY_CALLS {
                    instance.write(sink, &empty).await.unwrap().unwrap();
                }
                started.elapsed().as_secs_f64() / EMPTY_CALLS as f64
            }
        }),
    }
}

/// Start-up: loading the component without and with the compile cache, in this process and
/// as a whole CLI process; and instantiating one sink from the pre-instantiated component.
fn startup(runs: usize, cli: &Path) -> serde_json::Value {
    let component = component_path();
    let cache = tempfile::tempdir().unwrap();
    let cached = RuntimeConfig {
        cache_dir: Some(cache.path().to_path_buf()),
        ..RuntimeConfig::default()
    };
    let time = |f: &dyn Fn()| {
        let started = Instant::now();
        f();
        started.elapsed().as_secs_f64()
    };
    let cold = median(
        (0..runs)
            .map(|_| time(&|| drop(SinkRuntime::load(&component).unwrap())))
            .collect(),
    );
    drop(SinkRuntime::load_with(&component, &cached).unwrap()); // fills the cache
    let warm = median(
        (0..runs.max(5))
            .map(|_| time(&|| drop(SinkRuntime::load_with(&component, &cached).unwrap())))
            .collect(),
    );
    let cli_time = |args: &[&str]| {
        median(
            (0..runs.max(5))
                .map(|_| {
                    time(&|| {
                        let out = Command::new(cli)
                            .args(args)
                            .arg("describe")
                            .env("NATS_SINK_COMPONENT", &component)
                            .output()
                            .expect("run the CLI");
                        assert!(out.status.success());
                    })
                })
                .collect(),
        )
    };
    let cache_arg = cache.path().display().to_string();
    let cli_cold = cli_time(&["--no-cache"]);
    let cli_warm = cli_time(&["--cache-dir", &cache_arg]);

    let runtime = SinkRuntime::load(&component).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let instantiate = rt.block_on(async {
        let calls = 500;
        let started = Instant::now();
        for _ in 0..calls {
            runtime.describe().await.unwrap();
        }
        started.elapsed().as_secs_f64() / calls as f64
    });
    json!({
        "load_cold_ms": cold * 1e3,
        "load_cached_ms": warm * 1e3,
        "cli_describe_cold_ms": cli_cold * 1e3,
        "cli_describe_cached_ms": cli_warm * 1e3,
        "instantiate_and_describe_ms": instantiate * 1e3,
    })
}

/// Peak resident memory of `nats-sink run` over `rows` rows from a file, on core NATS.
fn peak_memory(cli: &Path, server: &NatsServer, rows: usize) -> (f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let schema = dir.path().join("schema.json");
    let data = realistic(1);
    std::fs::write(
        &schema,
        json!({"columns": data.columns.iter().map(|c| json!({"name": c.name, "type": c.data_type})).collect::<Vec<_>>()}).to_string(),
    )
    .unwrap();
    let input = dir.path().join("rows.jsonl");
    {
        use std::io::Write as _;
        let mut out = std::io::BufWriter::new(std::fs::File::create(&input).unwrap());
        for i in 0..rows {
            writeln!(
                out,
                r#"{{"order_id":{},"customer":"customer-{:06}@example.com","amount":"{}.{:02}","quantity":{},"unit_price":{},"created_at":"2024-03-01 12:00:{:02}.{:06}+00","ship_date":"2024-04-{:02}","status":"paid","tags":["priority","region-{}"],"gift":{},"attributes":{{"channel":"web","score":{}}},"ref":"5f0e1b2c-3d4e-4f50-8a9b-{:012x}"}}"#,
                1_000_000 + i,
                i * 7919 % 1_000_000,
                i % 10_000,
                i % 100,
                i % 17 + 1,
                (i % 1000) as f64 * 0.25 + 0.99,
                i % 60,
                i % 1_000_000,
                i % 28 + 1,
                i % 12,
                i % 3 == 0,
                i % 97,
                i,
            )
            .unwrap();
        }
    }
    let started = Instant::now();
    let out = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("peak_kib=%M")
        .arg(cli)
        .args(["run", "--schema"])
        .arg(&schema)
        .arg("--input")
        .arg(&input)
        .args(["--with", &format!("server_url={}", server.url())])
        .args([
            "--with",
            "subject=bench.memory",
            "--with",
            "connect_mode=plain",
        ])
        .env("NATS_SINK_COMPONENT", component_path())
        .output()
        .expect("run the CLI under /usr/bin/time");
    let seconds = started.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let kib: f64 = stderr
        .lines()
        .find_map(|l| l.strip_prefix("peak_kib="))
        .and_then(|v| v.trim().parse().ok())
        .expect("peak memory from /usr/bin/time");
    (kib / 1024.0, rows as f64 / seconds)
}

fn release_cli() -> PathBuf {
    let path = target_dir().join("release").join("nats-sink");
    assert!(
        path.exists(),
        "{} is missing: `just bench` builds it",
        path.display()
    );
    path
}

/// What one run measures; every cell runs several, paired in rounds.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Mode {
    Raw,
    RawIds,
    Native,
    Component,
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
            Mode::ComponentNoIds => "component_without_ids",
        }
    }
}

/// The ratios each throughput cell reports: JSON key, column, numerator, denominator (rates).
const RATIOS: [(&str, &str, Mode, Mode); 5] = [
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

fn main() {
    // `cargo bench` passes `--bench`; nothing else is taken from the command line.
    let rows = env_number("BENCH_ROWS", 50_000);
    let runs = env_number("BENCH_RUNS", 5).max(1);
    let memory_rows = env_number("BENCH_MEMORY_ROWS", 1_000_000);
    let cli = release_cli();
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
    // 1024. `encode`: encoding alone; `raw`, `native` or `component`: that mode alone; any
    // other value: native and component in turn.
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
    for data in 0..datasets.len() {
        for route in [Route::Core, Route::JetStream] {
            for batch in BATCHES {
                let mut modes = vec![Mode::Raw, Mode::RawIds, Mode::Native, Mode::Component];
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

    println!("\nrows/s ({})", paired::LEGEND);
    println!(
        "{:<10} {:<9} {:>5}  {:<22} {:<22} {:<22} {:<22}",
        "rows", "route", "batch", "raw", "raw+id", "native", "component"
    );
    for cell in &cells {
        let data = &datasets[cell.data];
        let n = data.rows.len();
        let rate = |mode| cell.rate(mode, n).rate();
        println!(
            "{:<10} {:<9} {:>5}  {:<22} {:<22} {:<22} {:<22}",
            data.short,
            cell.route.name(),
            cell.batch,
            rate(Mode::Raw),
            rate(Mode::RawIds),
            rate(Mode::Native),
            rate(Mode::Component),
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
        let rates: Vec<(&str, Spread)> = [Mode::Raw, Mode::RawIds, Mode::Native, Mode::Component]
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
        let mut entry = figures_json(&[
            ("native_rows_per_s", &native),
            ("wasm_rows_per_s", &wasm),
            ("wasm_to_native", &ratio),
            ("empty_write_native_us", &empty_native),
            ("empty_write_component_us", &empty_wasm),
        ]);
        entry.insert("dataset".into(), json!(data.name));
        encode.push(serde_json::Value::from(entry));
    }

    let startup = startup(runs, &cli);
    println!("\nstart-up: {startup}");
    let (peak_mib, memory_rate) = peak_memory(&cli, &bench.server, memory_rows);
    println!(
        "peak memory of `nats-sink run` over {memory_rows} realistic rows from a file (core NATS): {peak_mib:.1} MiB ({memory_rate:.0} rows/s)"
    );

    let report = json!({
        "rows_per_run": rows, "runs": runs, "paired_rounds": runs,
        "order": "every mode of every cell once per round, rotated by one each round",
        "wide_spread_over": paired::WIDE,
        "checkpoint_rows": CHECKPOINT_ROWS,
        "throughput": results, "without_ids": without_ids, "encode": encode, "startup": startup,
        "peak_memory": {"rows": memory_rows, "peak_mib": peak_mib, "rows_per_s": memory_rate},
    });
    match &previous {
        Some(previous) => agreement::print(previous, &report),
        None => println!("\nno earlier target/bench.json to compare with"),
    }
    std::fs::write(&report_path, serde_json::to_string_pretty(&report).unwrap()).unwrap();
    println!("\nwritten to {}", report_path.display());
}
