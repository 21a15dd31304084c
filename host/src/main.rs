//! `nats-sink`: sink JSON Lines into NATS through the component; validate and describe options.
//!
//! Exit codes: 0 done; 2 bad options, schema or input; 1 delivery failure.

use std::io::{IsTerminal as _, Read as _, Write as _};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{anyhow, Context as _};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use nats_sink::{Column, HostError, Rows, SinkError, SinkRuntime};
use nats_sink_guest::schema::Schema;
use sha2::{Digest as _, Sha256};

/// The largest schema file read: a 100,000-column schema is about 4 MB.
const MAX_SCHEMA_BYTES: u64 = 16 << 20;
/// The default bound on one input line: eight times nats-server's default max_payload.
const DEFAULT_MAX_LINE_BYTES: u32 = 8 << 20;
/// A batch is handed to the component once its rows take this much (values and bytes), even
/// before `--batch-size` rows, so that a call fits in the guest's memory.
const MAX_BATCH_BYTES: usize = 8 << 20;

/// Set once standard output's reader has gone (a closed pipe, as in `describe | head -1`):
/// later output is dropped quietly and the command's exit code stands.
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// Write one line of the command's output. A closed pipe ends output quietly; any other
/// failure (a full disk) fails the command.
fn write_out(args: std::fmt::Arguments<'_>) -> Result<(), Failure> {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    let written = out
        .write_fmt(args)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
    match written {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            STDOUT_CLOSED.store(true, Ordering::Relaxed);
            Ok(())
        }
        Err(e) => Err(Failure::Output(e)),
    }
}

/// `println!` whose failure is the command's (see `write_out`).
macro_rules! say {
    ($($arg:tt)*) => { write_out(format_args!($($arg)*)) };
}

/// A line on standard error. If it cannot be written it is lost quietly: the exit code still
/// tells the outcome, and a run that delivered everything must not fail for its summary.
macro_rules! note {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

mod cli;
use cli::options::SinkOptions;

#[derive(Parser)]
#[command(
    name = "nats-sink",
    version,
    about = "A NATS sink connector running as a WebAssembly component"
)]
struct Cli {
    #[command(flatten)]
    component: ComponentArgs,
    #[command(subcommand)]
    command: Command,
}

/// Which component to run, and how.
#[derive(clap::Args)]
struct ComponentArgs {
    /// The sink component [default: $NATS_SINK_COMPONENT, else the one built into this binary].
    #[arg(long, global = true)]
    component: Option<PathBuf>,
    /// Where compiled components are cached between runs (default: $NATS_SINK_CACHE, else
    /// $XDG_CACHE_HOME/nats-sink, else ~/.cache/nats-sink).
    #[arg(long, global = true, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Compile the component on every start instead of caching it.
    #[arg(long, global = true, conflicts_with = "cache_dir")]
    no_cache: bool,
    /// Memory each sink's guest may grow to, in MiB.
    #[arg(long, global = true, value_name = "MIB", default_value_t = (nats_sink::DEFAULT_MEMORY_LIMIT >> 20) as u32,
          value_parser = clap::value_parser!(u32).range(1..=65_536))]
    memory_limit_mib: u32,
    /// Time one call may run guest code, in milliseconds (the host's I/O does not count).
    #[arg(long, global = true, value_name = "MS", default_value_t = nats_sink::DEFAULT_CPU_LIMIT.as_millis() as u64,
          value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    cpu_limit_ms: u64,
}

impl ComponentArgs {
    fn cache_dir(&self) -> Option<PathBuf> {
        if self.no_cache {
            return None;
        }
        let env_dir = |name: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        self.cache_dir
            .clone()
            .or_else(|| env_dir("NATS_SINK_CACHE"))
            .or_else(|| env_dir("XDG_CACHE_HOME").map(|d| d.join("nats-sink")))
            .or_else(|| env_dir("HOME").map(|d| d.join(".cache").join("nats-sink")))
    }

    fn load(&self) -> Result<SinkRuntime, Failure> {
        let config = nats_sink::RuntimeConfig {
            cache_dir: self.cache_dir(),
            memory_limit: (self.memory_limit_mib as usize) << 20,
            cpu_limit: std::time::Duration::from_millis(self.cpu_limit_ms),
            ..Default::default()
        };
        let from_env = std::env::var_os("NATS_SINK_COMPONENT").filter(|v| !v.is_empty());
        let loaded = match (
            self.component.clone().or(from_env.map(PathBuf::from)),
            EMBEDDED_COMPONENT,
        ) {
            (Some(path), _) => SinkRuntime::load_with(&path, &config),
            (None, Some(bytes)) => SinkRuntime::from_bytes_with(bytes, &config),
            (None, None) => {
                return Err(Failure::Delivery(anyhow!(
                    "this nats-sink was built without its component: pass --component FILE \
                     (or set NATS_SINK_COMPONENT), or run `just build` to build one that embeds it"
                )))
            }
        };
        loaded.map_err(|e| Failure::Delivery(anyhow!(e).context("loading the sink component")))
    }
}

/// The component built with this binary (see `build.rs`), used when no other is named.
const EMBEDDED_COMPONENT: Option<&[u8]> =
    include!(concat!(env!("OUT_DIR"), "/embedded_component.rs"));

#[derive(Subcommand)]
enum Command {
    /// Sink JSON Lines (one object per row) into NATS, flushing at the end.
    Run {
        /// JSON file: {"columns":[{"name":"id","type":"integer"}, ...]}
        #[arg(long)]
        schema: PathBuf,
        /// JSON Lines input; `-` (the default) is standard input.
        #[arg(long, default_value = "-")]
        input: String,
        #[command(flatten)]
        options: SinkOptions,
        /// Rows per batch. Each batch is a checkpoint: written, then flushed. Its rows' message
        /// ids come from its content and first line, so rerunning the same input with the same
        /// batch size replays rather than duplicates.
        #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        batch_size: u32,
        /// The longest input line read, in bytes; a longer line stops the run (exit 2) after
        /// the rows before it are delivered.
        #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_LINE_BYTES,
              value_parser = clap::value_parser!(u32).range(1..=1 << 30))]
        max_line_bytes: u32,
        /// Serve the sink's metrics in Prometheus text format at http://ADDR/metrics while
        /// it runs (for example 127.0.0.1:9464).
        #[arg(long, value_name = "ADDR")]
        metrics_addr: Option<std::net::SocketAddr>,
        /// Write and flush a partial batch once its oldest row has waited this long, so rows
        /// from a slow producer are confirmed promptly; a full batch goes at once.
        #[arg(long, value_name = "MS", default_value_t = 100,
              value_parser = clap::value_parser!(u64).range(0..=3_600_000))]
        linger_ms: u64,
        /// Record in FILE, after every confirmed batch, how far the input is confirmed; a run
        /// with the same FILE continues from there (a file input only, not `-`).
        #[arg(long, value_name = "FILE")]
        state: Option<PathBuf>,
    },
    /// Connect with the options and report the server, the subject's route and publish
    /// permission; exit 0 when a sink could publish, 1 with the reason when not.
    Check {
        #[command(flatten)]
        options: SinkOptions,
    },
    /// Print every problem with the options; exit 2 if there is any.
    Validate {
        #[command(flatten)]
        options: SinkOptions,
    },
    /// List every option with whether it is required, its default and what it does.
    Describe,
}

/// How a run ended badly: the caller's input (exit 2), delivery (exit 1), or the command's
/// own output could not be written (exit 1).
enum Failure {
    Input(anyhow::Error),
    Delivery(anyhow::Error),
    Output(std::io::Error),
    /// A signal stopped the run, which said why already: exit with this code.
    Stopped(u8),
}

impl From<HostError> for Failure {
    fn from(e: HostError) -> Failure {
        if e.is_input_error() {
            Failure::Input(e.into())
        } else {
            Failure::Delivery(e.into())
        }
    }
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            // sqlparser logs the statement it parses, and async-nats logs what a server said
            // back (a hostile one can echo the CONNECT line), secrets and all: never shown. Our
            // own logs and errors carry what matters of both, masked.
            tracing_subscriber::EnvFilter::from_env("NATS_SINK_LOG")
                .add_directive("sqlparser=off".parse().expect("a valid directive"))
                .add_directive("async_nats=off".parse().expect("a valid directive")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let cli = Cli::parse();
    let component = &cli.component;
    let outcome = async {
        match cli.command {
            Command::Run {
                schema,
                input,
                options,
                batch_size,
                max_line_bytes,
                metrics_addr,
                linger_ms,
                state,
            } => {
                let options = options.pairs().map_err(Failure::Input)?;
                let limits = RunLimits {
                    batch_rows: batch_size as usize,
                    batch_bytes: MAX_BATCH_BYTES,
                    line_bytes: max_line_bytes as usize,
                    linger: std::time::Duration::from_millis(linger_ms),
                };
                let extras = RunExtras {
                    metrics_addr,
                    state,
                };
                run(component, &schema, &input, &options, limits, extras).await
            }
            Command::Validate { options } => {
                validate(component, &options.pairs().map_err(Failure::Input)?).await
            }
            Command::Check { options } => {
                check(component, &options.pairs().map_err(Failure::Input)?).await
            }
            Command::Describe => describe(component).await,
        }
    }
    .await;
    let code: u8 = match outcome {
        Ok(()) => 0,
        Err(Failure::Stopped(code)) => code,
        Err(Failure::Input(e)) => {
            note!("error: {e:#}");
            2
        }
        Err(Failure::Delivery(e)) => {
            note!("error: {e:#}");
            1
        }
        Err(Failure::Output(e)) => {
            note!("error: writing to standard output: {e}");
            1
        }
    };
    // Standard input is read by a blocking thread that nothing can cancel: returning would wait
    // for it (for a producer's next line) before the runtime could shut down.
    std::process::exit(code.into())
}

/// The options' problems that only the host can find (files, keys), as bad options.
async fn preflight(
    runtime: &SinkRuntime,
    options: &[(String, String)],
) -> Result<Vec<nats_sink::preflight::Problem>, Failure> {
    let target = runtime.resolve(options).await?;
    nats_sink::preflight::check(&target.connect, &runtime.reach(options)).map_err(refused)
}

/// The host's policy refused what the component asked to reach: not the user's options.
fn refused(error: nats_sink::bindings::transport::TransportError) -> Failure {
    Failure::Delivery(anyhow!(nats_sink::describe_transport_error(&error)))
}

fn refuse_preflight(problems: Vec<nats_sink::preflight::Problem>) -> Result<(), Failure> {
    if problems.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
    Err(Failure::Input(anyhow!(
        "invalid options: {}",
        lines.join("; ")
    )))
}

async fn validate(component: &ComponentArgs, options: &[(String, String)]) -> Result<(), Failure> {
    let runtime = component.load()?;
    let mut problems: Vec<String> = runtime
        .validate(options)
        .await?
        .iter()
        .map(nats_sink::describe_option_problem)
        .collect();
    // What `run` would also refuse: files and keys, once the options themselves are valid.
    if problems.is_empty() {
        problems = preflight(&runtime, options)
            .await?
            .iter()
            .map(ToString::to_string)
            .collect();
    }
    if problems.is_empty() {
        say!("options are valid")?;
        return Ok(());
    }
    // The verdict is bad options (exit 2) even when the list cannot be written.
    if let Err(Failure::Output(e)) = problems.iter().try_for_each(|p| say!("{p}")) {
        note!("error: writing to standard output: {e}");
    }
    Err(Failure::Input(anyhow!(
        "{} problem(s) with the options",
        problems.len()
    )))
}

async fn check(component: &ComponentArgs, options: &[(String, String)]) -> Result<(), Failure> {
    let runtime = component.load()?;
    let target = runtime.resolve(options).await?;
    let reach = runtime.reach(options);
    refuse_preflight(nats_sink::preflight::check(&target.connect, &reach).map_err(refused)?)?;
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

/// Answer `GET /metrics` at `addr` with `metrics` in Prometheus text format, on a thread of
/// its own, for as long as the process runs.
fn serve_metrics(addr: std::net::SocketAddr, metrics: &nats_sink::Metrics) -> Result<(), Failure> {
    let server = tiny_http::Server::http(addr)
        .map_err(|e| Failure::Input(anyhow!("--metrics-addr {addr}: {e}")))?;
    let mut registry = prometheus_client::registry::Registry::default();
    metrics.register(&mut registry);
    let content_type =
        tiny_http::Header::from_bytes("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            .map_err(|()| Failure::Input(anyhow!("the metrics content type")))?;
    if let Some(bound) = server.server_addr().to_ip() {
        note!("nats-sink: metrics at http://{bound}/metrics");
    }
    std::thread::spawn(move || {
        for request in server.incoming_requests() {
            let response = match request.url() {
                "/metrics" => {
                    tiny_http::Response::from_string(nats_sink::metrics::prometheus_text(&registry))
                        .with_header(content_type.clone())
                }
                _ => tiny_http::Response::from_string("not found; try /metrics\n")
                    .with_status_code(404),
            };
            let _ = request.respond(response);
        }
    });
    Ok(())
}

async fn describe(component: &ComponentArgs) -> Result<(), Failure> {
    let options = component.load()?.describe().await?;
    let width = options.iter().map(|o| o.name.len()).max().unwrap_or(0);
    for o in options {
        let required = if o.required { "required" } else { "optional" };
        let default = if o.default_value.is_empty() {
            String::new()
        } else {
            format!(" [default: {}]", o.default_value)
        };
        say!("{:width$}  {required}  {}{default}", o.name, o.doc)?;
    }
    Ok(())
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SchemaFile {
    columns: Vec<SchemaColumn>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SchemaColumn {
    name: String,
    #[serde(rename = "type")]
    data_type: String,
}

fn read_schema(path: &PathBuf) -> Result<(Schema, Vec<Column>), Failure> {
    let read = || -> anyhow::Result<(Schema, Vec<Column>)> {
        // Bounded: `--schema /dev/zero` must not read forever.
        let mut bytes = Vec::new();
        std::fs::File::open(path)?
            .take(MAX_SCHEMA_BYTES + 1)
            .read_to_end(&mut bytes)?;
        if bytes.len() as u64 > MAX_SCHEMA_BYTES {
            anyhow::bail!("is larger than {} MiB", MAX_SCHEMA_BYTES >> 20);
        }
        let text = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
        let file: SchemaFile = serde_json::from_slice(text)?;
        let schema = Schema::parse(
            file.columns
                .iter()
                .map(|c| (c.name.as_str(), c.data_type.as_str())),
        )?;
        let columns = file
            .columns
            .into_iter()
            .map(|c| Column {
                name: c.name,
                data_type: c.data_type,
            })
            .collect();
        Ok((schema, columns))
    };
    read()
        .with_context(|| format!("schema {}", path.display()))
        .map_err(Failure::Input)
}

/// Rows of the current batch, the input line each came from (its number, where it starts
/// and ends, its text), and a digest of those lines.
struct Batch {
    rows: Rows,
    lines: Vec<u64>,
    spans: Vec<(u64, u64)>,
    texts: Vec<String>,
    digest: Sha256,
}

impl Batch {
    fn new(capacity: usize) -> Batch {
        Batch {
            rows: Rows::new(),
            lines: Vec::with_capacity(capacity),
            spans: Vec::with_capacity(capacity),
            texts: Vec::with_capacity(capacity),
            digest: Sha256::new(),
        }
    }

    fn push(&mut self, row: cli::reader::ReadRow) {
        self.push_text(row.line, &row.text);
        self.rows.push(&row.datums);
        self.spans.push((row.start, row.end));
        self.texts.push(row.text);
    }

    /// Add a line to the batch's lines and to the checkpoint's digest.
    fn push_text(&mut self, line_number: u64, line: &str) {
        if self.lines.is_empty() {
            self.digest.update(line_number.to_be_bytes());
        }
        self.digest.update(line.as_bytes());
        self.digest.update(b"\n");
        self.lines.push(line_number);
    }

    /// The batch's checkpoint id: the same lines at the same place give the same id, so a
    /// rerun of the same input replays (and a stream drops what it already holds), while any
    /// other input gets other ids.
    fn take_checkpoint(&mut self) -> u64 {
        let digest = std::mem::take(&mut self.digest).finalize();
        let mut id = [0u8; 8];
        id.copy_from_slice(&digest[..8]);
        u64::from_be_bytes(id)
    }

    /// Roughly what the batch takes in the guest: its values and its strings.
    fn bytes(&self) -> usize {
        self.rows.values.len() * std::mem::size_of::<nats_sink::Value>() + self.rows.data.len()
    }

    fn clear(&mut self) {
        self.rows.clear();
        self.lines.clear();
        self.spans.clear();
        self.texts.clear();
        self.digest = Sha256::new();
    }
}

/// How much one run holds at once, and how long a row may wait.
#[derive(Debug, Clone, Copy)]
struct RunLimits {
    /// Rows per batch (`--batch-size`).
    batch_rows: usize,
    /// Bytes per batch, roughly: its values and its strings.
    batch_bytes: usize,
    /// The longest input line (`--max-line-bytes`).
    line_bytes: usize,
    /// How long a batch's oldest row may wait before a partial batch goes (`--linger-ms`).
    linger: std::time::Duration,
}

/// The rest of `run`'s options.
struct RunExtras {
    metrics_addr: Option<std::net::SocketAddr>,
    state: Option<PathBuf>,
}

/// How long the final flush of a stopping run may take before the sink is dropped; every
/// batch was flushed already, so it has nothing to wait for.
const SHUTDOWN_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// Await `work`. A first signal meanwhile is recorded and the work goes on (the run stops
/// reading and delivers what it read); a second one ends the wait at once (`None`).
async fn guarded<T>(
    work: impl std::future::Future<Output = T>,
    signals: &mut cli::signals::Signals,
    stopping: &mut Option<cli::signals::StopSignal>,
) -> Option<T> {
    tokio::pin!(work);
    loop {
        tokio::select! {
            biased;
            signal = signals.next() => match stopping {
                Some(_) => return None,
                None => {
                    note!("nats-sink: {}: no more input is read; delivering the rows read (a second signal stops at once)", signal.name());
                    *stopping = Some(signal);
                }
            },
            done = &mut work => return Some(done),
        }
    }
}

async fn run(
    component: &ComponentArgs,
    schema_path: &PathBuf,
    input: &str,
    options: &[(String, String)],
    limits: RunLimits,
    extras: RunExtras,
) -> Result<(), Failure> {
    use cli::reader::Read;

    let (schema, columns) = read_schema(schema_path)?;
    if extras.state.is_some() && input == "-" {
        return Err(Failure::Input(anyhow!(
            "--state needs a file input: standard input cannot be read again, so a later run \
             could neither check nor skip what this one confirmed"
        )));
    }
    let mut file = match input {
        "-" => None,
        path => Some(
            tokio::fs::File::open(path)
                .await
                .with_context(|| format!("opening input {input}"))
                .map_err(Failure::Input)?,
        ),
    };
    let runtime = component.load()?;
    refuse_preflight(preflight(&runtime, options).await?)?;
    let target = runtime.resolve(options).await?;
    let reach = runtime.reach(options);
    let (state, plan) = match &extras.state {
        None => (None, cli::resume::Plan::fresh()),
        Some(path) => {
            let fresh = cli::state::RunState::fresh(
                std::fs::canonicalize(input)
                    .with_context(|| format!("input {input}"))
                    .map_err(Failure::Input)?,
                cli::state::sink_id(options, &schema).map_err(Failure::Input)?,
                target.subject.clone(),
                limits.batch_rows as u32,
            );
            let mut state = cli::state::StateFile::open(path, fresh).map_err(Failure::Input)?;
            let plan =
                cli::resume::plan(&mut state, target.clone(), &reach, limits.line_bytes).await?;
            (Some(state), plan)
        }
    };
    let reader: Box<dyn tokio::io::AsyncRead + Unpin + Send> = match file.take() {
        None => Box::new(tokio::io::stdin()),
        Some(mut file) => {
            use tokio::io::AsyncSeekExt as _;
            file.seek(std::io::SeekFrom::Start(plan.start.offset))
                .await
                .with_context(|| format!("seeking input {input} to byte {}", plan.start.offset))
                .map_err(Failure::Input)?;
            Box::new(file)
        }
    };
    let sink = runtime.open(options, &columns).await?;
    if let Some(addr) = extras.metrics_addr {
        serve_metrics(addr, sink.metrics())?;
    }
    let mut signals = cli::signals::Signals::install()
        .context("listening for SIGINT and SIGTERM")
        .map_err(Failure::Delivery)?;
    let started = Instant::now();

    let progress = if std::io::stderr().is_terminal() {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {human_pos} rows  {per_sec}  {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar
    } else {
        ProgressBar::hidden()
    };

    let mut rows = cli::reader::spawn(
        reader,
        std::sync::Arc::new(schema),
        plan.start,
        limits.line_bytes,
        limits.batch_rows,
    );
    let reopen = cli::deliver::Reopen {
        runtime: runtime.clone(),
        options: options.to_vec(),
        columns,
        budget: target.connect.delivery,
    };
    let mut deliverer = cli::deliver::Deliverer::new(sink, plan.confirmed, state, reopen);
    let mut batch = Batch::new(limits.batch_rows.min(1 << 16));
    // The first batch of a resumed run replays the batch in flight at the crash: the same
    // rows, so the same checkpoint id; no timer splits it.
    let mut first_batch_rows = plan.first_batch_rows;
    // When the batch's oldest row arrived, for the linger deadline.
    let mut oldest: Option<tokio::time::Instant> = None;
    let mut last_read = plan.start.line;
    let mut input_ended = false;
    let mut stopping: Option<cli::signals::StopSignal> = None;
    // What stopped the run early. After bad input, what came before it is still delivered.
    let mut stop: Option<Failure> = None;
    let aborted = 'read: loop {
        if stopping.is_some() {
            // Rows already in the channel were read; they are delivered, nothing more is read.
            rows.close();
        }
        let full = batch.rows.len() >= first_batch_rows.unwrap_or(limits.batch_rows)
            || batch.bytes() >= limits.batch_bytes;
        let deadline = oldest
            .filter(|_| first_batch_rows.is_none())
            .map(|t| t + limits.linger);
        let due = full || deadline.is_some_and(|d| d <= tokio::time::Instant::now());
        if due {
            match guarded(deliverer.deliver(&mut batch), &mut signals, &mut stopping).await {
                None => break 'read true,
                Some(Err(e)) => {
                    stop = Some(e);
                    break 'read false;
                }
                Some(Ok(())) => {}
            }
            oldest = None;
            first_batch_rows = None;
            progress.set_position(deliverer.confirmed.rows);
            continue;
        }
        tokio::select! {
            biased;
            signal = signals.next() => match stopping {
                Some(_) => break 'read true,
                None => {
                    note!("nats-sink: {}: no more input is read; delivering the rows read (a second signal stops at once)", signal.name());
                    stopping = Some(signal);
                }
            },
            read = rows.recv() => match read {
                Some(Read::Row(row)) => {
                    if batch.rows.is_empty() {
                        oldest = Some(tokio::time::Instant::now());
                    }
                    last_read = row.line;
                    batch.push(row);
                }
                Some(Read::End) => {
                    input_ended = true;
                    break 'read false;
                }
                Some(Read::Failed(e)) => {
                    stop = Some(Failure::Input(e));
                    break 'read false;
                }
                // Closed after a signal, and drained.
                None => break 'read false,
            },
            () = tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)), if deadline.is_some() => {}
        }
    };
    // Rows read before a bad line are still delivered; a delivery failure empties the batch,
    // so this is a no-op when the loop stopped on one. A refusal here concerns an earlier
    // line, so it wins.
    let (pending, aborted) = match aborted {
        true => (None, true),
        false => match guarded(deliverer.deliver(&mut batch), &mut signals, &mut stopping).await {
            None => (None, true),
            Some(outcome) => (outcome.err(), false),
        },
    };
    progress.finish_and_clear();
    let metrics = deliverer.metrics();
    let confirmed = deliverer.confirmed.clone();
    let replays = deliverer.replays;
    if !aborted {
        let _ = deliverer.sink.shutdown(SHUTDOWN_DEADLINE).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let resent = if metrics.retries > 0 {
        format!(", {} resent after failures", metrics.retries)
    } else {
        String::new()
    };
    let replayed = if replays > 0 {
        format!(", {replays} batch(es) replayed on a new connection")
    } else {
        String::new()
    };
    let summary = format!(
        "nats-sink: {} rows confirmed; {} messages, {} bytes sent in {seconds:.2} s ({:.0} rows/s){resent}{replayed}",
        confirmed.rows,
        metrics.messages,
        metrics.payload_bytes,
        confirmed.rows as f64 / seconds.max(1e-9),
    );
    note!(
        "nats-sink: metrics: rows {} accepted, {} refused; messages {}; bytes {}; retries {}; errors {}; flushes {} (mean {:.1} ms)",
        metrics.rows,
        metrics.rows_refused,
        metrics.messages,
        metrics.payload_bytes,
        metrics.retries,
        metrics.errors,
        metrics.flushes,
        metrics.flush_seconds * 1000.0 / metrics.flushes.max(1) as f64,
    );
    if let (true, Some(signal)) = (aborted, stopping) {
        let unconfirmed = if last_read > confirmed.line {
            format!(
                "lines {}–{last_read} read but not confirmed",
                confirmed.line + 1
            )
        } else {
            "every line read is confirmed".to_string()
        };
        note!("{summary}; stopped at once by a second signal: confirmed through line {}; {unconfirmed}", confirmed.line);
        return Err(Failure::Stopped(signal.exit_code()));
    }
    let input_error = match (pending, stop) {
        (Some(Failure::Delivery(e)), _) | (None, Some(Failure::Delivery(e))) => {
            note!("{summary}; delivery failed");
            let reached = format!(
                "rows through input line {} ({} rows) are confirmed",
                confirmed.line, confirmed.rows
            );
            let advice = if rerun_can_succeed(&e) {
                let how = match extras.state {
                    Some(_) => "rerun with the same --state to continue from there",
                    None => "rerun the same input with the same --batch-size to replay the rest (with dedupe on, a stream drops rows it already holds)",
                };
                format!("{reached}; {how}")
            } else {
                let who = match e.downcast_ref::<HostError>() {
                    Some(HostError::Runtime { .. }) => "the sandbox stopped the sink",
                    _ => "the server refused the rest",
                };
                format!("{reached}; {who}, so a rerun fails the same way until the cause is fixed")
            };
            return Err(Failure::Delivery(e.context(advice)));
        }
        (Some(Failure::Output(e)), _) | (None, Some(Failure::Output(e))) => {
            return Err(Failure::Output(e))
        }
        (Some(Failure::Stopped(code)), _) | (None, Some(Failure::Stopped(code))) => {
            return Err(Failure::Stopped(code))
        }
        (Some(Failure::Input(e)), _) | (None, Some(Failure::Input(e))) => Some(e),
        (None, None) => None,
    };
    match stopping {
        Some(signal) if input_error.is_none() => {
            note!(
                "{summary}; all confirmed; stopped by {}: confirmed through line {}",
                signal.name(),
                confirmed.line
            );
            if !input_ended {
                return Err(Failure::Stopped(signal.exit_code()));
            }
        }
        _ => note!("{summary}; all confirmed"),
    }
    match input_error {
        Some(e) => Err(Failure::Input(
            e.context(format!("stopped after {} delivered rows", confirmed.rows)),
        )),
        None => Ok(()),
    }
}

/// True when the failure may pass on its own (a connection or a timeout), so replaying the
/// same input can succeed; false for a refusal by the server or the sandbox, which repeats.
fn rerun_can_succeed(error: &anyhow::Error) -> bool {
    match error.downcast_ref::<HostError>() {
        Some(HostError::Sink(SinkError::Connection(_) | SinkError::Timeout(_))) => true,
        Some(HostError::Sink(SinkError::Closed(cause))) => {
            cause.contains("connection:") || cause.contains("timeout:")
        }
        _ => false,
    }
}
