//! `just bench`: the sink measured the way its users judge it, against baselines measured in
//! the same run. It starts its own `nats-server` on a free loopback port, prints a table and
//! writes it as JSON to `target/bench.json`.
//!
//! Modes, each publishing the same rows to the same server:
//! - raw: async-nats publishing payloads encoded beforehand (the ceiling on this machine);
//! - native: the guest's sink compiled natively over the host's transport (no wasm);
//! - component: the full sink through wasmtime.
//!
//! Every mode writes rows in calls of `batch` rows and confirms every 4,096 rows (a flush:
//! JetStream acks, or a core round trip). Each figure is the median of `BENCH_RUNS` runs
//! (default 3) of `BENCH_ROWS` rows (default 50,000).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::Instant;

use nats_sink::transport::NatsConnection;
use nats_sink::{Column, Datum, Rows, RuntimeConfig, SinkRuntime};
use nats_sink_guest::bindings as guest;
use nats_sink_tests::memory::{self, MemoryHost};
use nats_sink_tests::{columns, component_path, pack, target_dir, to_guest_rows, NatsServer};
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

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(|a, b| a.total_cmp(b));
    samples[samples.len() / 2]
}

/// A fixed set of rows in the three shapes the modes need.
struct Dataset {
    name: &'static str,
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
    Dataset::new("realistic (12 columns)", columns, rows)
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
    Dataset::new("small (3 columns)", columns, rows)
}

impl Dataset {
    fn new(name: &'static str, columns: Vec<Column>, datums: Vec<Vec<Datum>>) -> Dataset {
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
) -> nats_sink_guest::sink::Sink<T> {
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
    nats_sink_guest::sink::Sink::new(config, schema, transport)
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
    runs: usize,
    /// A fresh subject (and stream) per run, so no run sees another's messages or ids.
    serial: usize,
}

impl Bench {
    /// The median, over `runs` runs, of the seconds `run` takes.
    fn median_of(&mut self, mut run: impl FnMut(&mut Bench) -> f64) -> f64 {
        median((0..self.runs).map(|_| run(self)).collect())
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
        let mut sink = nats_sink_guest::sink::Sink::new(config, schema, transport);
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

/// Rows per second of encoding alone: native, and the component over a transport that
/// drops what it gets. Also the cost of one `write` crossing with no rows.
fn encode_rates(data: &Dataset, host: &MemoryHost, runs: usize) -> (f64, f64, f64, f64) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let batch = 1024;
    let packed: Vec<Rows> = data.rows.chunks(batch).map(pack).collect();
    let guest_rows: Vec<guest::Rows> = packed.iter().map(to_guest_rows).collect();
    let native = median(
        (0..runs)
            .map(|_| {
                let mut sink = native_sink(&data.columns, &[], Discard::default());
                let started = Instant::now();
                for rows in &guest_rows {
                    sink.write(rows).unwrap();
                }
                assert_eq!(sink.transport().messages as usize, data.rows.len());
                started.elapsed().as_secs_f64()
            })
            .collect(),
    );
    let memory_rows: Vec<memory::Rows> = packed.clone();
    let empty_memory = Rows::new();
    let (wasm, empty_native, empty_wasm) = rt.block_on(async {
        let mut wasm = Vec::new();
        let mut empty = Vec::new();
        for _ in 0..runs {
            let mut instance = host.instance().await.unwrap();
            instance.recorder.discard.store(true, Ordering::Relaxed);
            let opts = options("127.0.0.1:4222", "bench", &[]);
            let columns: Vec<memory::Column> = data
                .columns
                .iter()
                .map(|c| memory::Column {
                    name: c.name.clone(),
                    data_type: c.data_type.clone(),
                })
                .collect();
            let sink = instance.open(&opts, &columns).await.unwrap().unwrap();
            let started = Instant::now();
            for rows in &memory_rows {
                instance.write(sink, rows).await.unwrap().unwrap();
            }
            wasm.push(started.elapsed().as_secs_f64());
            assert_eq!(
                instance.recorder.messages.load(Ordering::Relaxed) as usize,
                data.rows.len()
            );
            let calls = 20_000;
            let started = Instant::now();
            for _ in 0..calls {
                instance.write(sink, &empty_memory).await.unwrap().unwrap();
            }
            empty.push(started.elapsed().as_secs_f64() / calls as f64);
        }
        let mut sink = native_sink(&data.columns, &[], Discard::default());
        let calls = 20_000;
        let started = Instant::now();
        for _ in 0..calls {
            sink.write(&guest::Rows::new()).unwrap();
        }
        let empty_native = started.elapsed().as_secs_f64() / calls as f64;
        (median(wasm), empty_native, median(empty))
    });
    let rows = data.rows.len() as f64;
    (rows / native, rows / wasm, empty_native, empty_wasm)
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

fn main() {
    // `cargo bench` passes `--bench`; nothing else is taken from the command line.
    let rows = env_number("BENCH_ROWS", 50_000);
    let runs = env_number("BENCH_RUNS", 3).max(1);
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
        runs,
        serial: 0,
    };
    // BENCH_PROFILE: a steady load for `perf record`, on the realistic rows, core NATS, batch
    // 1024. `encode`: encoding alone; `raw`, `native` or `component`: that mode alone; any
    // other value: native and component in turn.
    if let Ok(profile) = std::env::var("BENCH_PROFILE") {
        let data = realistic(rows);
        if profile == "encode" {
            let host = MemoryHost::load(&component_path()).expect("load the component");
            let (native, wasm, _, _) = encode_rates(&data, &host, runs);
            println!("encode: native {native:.0} rows/s, wasm {wasm:.0} rows/s");
            return;
        }
        for _ in 0..runs {
            let mut rate = |mode: &str| {
                let seconds = match mode {
                    "raw" => bench.raw(&data, Route::Core, false),
                    "native" => bench.native(&data, Route::Core, 1024),
                    _ => bench.component(&data, Route::Core, 1024),
                };
                println!("{mode} {:.0} rows/s", rows as f64 / seconds);
            };
            match profile.as_str() {
                "raw" | "native" | "component" => rate(&profile),
                _ => {
                    rate("native");
                    rate("component");
                }
            }
        }
        return;
    }
    let datasets = [realistic(rows), small(rows)];
    let host = MemoryHost::load(&component_path()).expect("load the component");

    println!(
        "nats-sink benchmark: {rows} rows per run, median of {runs} runs, confirmed every {CHECKPOINT_ROWS} rows\n"
    );
    let mut results = Vec::new();
    println!(
        "{:<24} {:<9} {:>5} {:>12} {:>9} {:>12} {:>12} {:>12} {:>10} {:>10}",
        "dataset",
        "route",
        "batch",
        "raw rows/s",
        "raw MB/s",
        "raw+id rows/s",
        "native rows/s",
        "comp rows/s",
        "comp/nat",
        "comp/raw"
    );
    for data in &datasets {
        for route in [Route::Core, Route::JetStream] {
            let raw = bench.median_of(|b| b.raw(data, route, false));
            let raw_ids = bench.median_of(|b| b.raw(data, route, true));
            for batch in BATCHES {
                let native = bench.median_of(|b| b.native(data, route, batch));
                let component = bench.median_of(|b| b.component(data, route, batch));
                let n = data.rows.len() as f64;
                let mb = data.bytes as f64 / 1e6;
                println!(
                    "{:<24} {:<9} {:>5} {:>12.0} {:>9.1} {:>12.0} {:>12.0} {:>12.0} {:>10.2} {:>10.2}",
                    data.name,
                    route.name(),
                    batch,
                    n / raw,
                    mb / raw,
                    n / raw_ids,
                    n / native,
                    n / component,
                    native / component,
                    raw / component,
                );
                results.push(json!({
                    "dataset": data.name, "route": route.name(), "batch": batch,
                    "rows": n, "payload_mb": mb,
                    "raw_rows_per_s": n / raw, "raw_mb_per_s": mb / raw,
                    "raw_with_ids_rows_per_s": n / raw_ids,
                    "native_rows_per_s": n / native, "native_mb_per_s": mb / native,
                    "component_rows_per_s": n / component, "component_mb_per_s": mb / component,
                    "component_to_native": native / component,
                    "component_to_raw": raw / component,
                    "component_to_raw_with_ids": raw_ids / component,
                }));
            }
        }
    }

    println!("\nwithout message ids (dedupe=false), core, batch 1024, against raw");
    let mut without_ids = Vec::new();
    for data in &datasets {
        let raw = bench.median_of(|b| b.raw(data, Route::Core, false));
        let component =
            bench.median_of(|b| b.component_with(data, Route::Core, 1024, &[("dedupe", "false")]));
        let n = data.rows.len() as f64;
        println!(
            "{:<24} raw {:>10.0} rows/s   component {:>10.0} rows/s   component/raw {:.2}",
            data.name,
            n / raw,
            n / component,
            raw / component,
        );
        without_ids.push(json!({
            "dataset": data.name, "raw_rows_per_s": n / raw,
            "component_rows_per_s": n / component, "component_to_raw": raw / component,
        }));
    }

    println!("\nencoding alone (batches of 1024, transport drops the messages)");
    let mut encode = Vec::new();
    for data in &datasets {
        let (native, wasm, empty_native, empty_wasm) = encode_rates(data, &host, runs);
        println!(
            "{:<24} native {:>10.0} rows/s   wasm {:>10.0} rows/s   wasm/native {:.2}   empty write: native {:.2} µs, component {:.2} µs",
            data.name,
            native,
            wasm,
            wasm / native,
            empty_native * 1e6,
            empty_wasm * 1e6,
        );
        encode.push(json!({
            "dataset": data.name, "native_rows_per_s": native, "wasm_rows_per_s": wasm,
            "wasm_to_native": wasm / native,
            "empty_write_native_us": empty_native * 1e6, "empty_write_component_us": empty_wasm * 1e6,
        }));
    }

    let startup = startup(runs, &cli);
    println!("\nstart-up: {startup}");
    let (peak_mib, memory_rate) = peak_memory(&cli, &bench.server, memory_rows);
    println!(
        "peak memory of `nats-sink run` over {memory_rows} realistic rows from a file (core NATS): {peak_mib:.1} MiB ({memory_rate:.0} rows/s)"
    );

    let report = json!({
        "rows_per_run": rows, "runs": runs, "checkpoint_rows": CHECKPOINT_ROWS,
        "throughput": results, "without_ids": without_ids, "encode": encode, "startup": startup,
        "peak_memory": {"rows": memory_rows, "peak_mib": peak_mib, "rows_per_s": memory_rate},
    });
    let path = target_dir().join("bench.json");
    std::fs::write(&path, serde_json::to_string_pretty(&report).unwrap()).unwrap();
    println!("\nwritten to {}", path.display());
}
