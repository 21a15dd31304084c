//! `nats-sink`: sink JSON Lines into NATS through the component; validate and describe options.
//!
//! Exit codes: 0 done; 2 bad options, schema or input; 1 delivery failure.

use std::io::{IsTerminal as _, Read as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{anyhow, Context as _};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use nats_sink::{Column, Datum, HostError, Rows, SinkError, SinkRuntime};
use nats_sink_cli::input::parse_line;
use nats_sink_cli::lines::BoundedLines;
use nats_sink_rules::schema::Schema;
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
    ($($arg:tt)*) => { $crate::write_out(format_args!($($arg)*)) };
}

/// A line on standard error. If it cannot be written it is lost quietly: the exit code still
/// tells the outcome, and a run that delivered everything must not fail for its summary.
macro_rules! note {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

mod check;
mod metrics_endpoint;
mod options;

use check::check;
use metrics_endpoint::serve_metrics;
use options::SinkOptions;

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
async fn main() -> ExitCode {
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
            } => {
                let options = options.pairs().map_err(Failure::Input)?;
                let limits = RunLimits {
                    batch_rows: batch_size as usize,
                    batch_bytes: MAX_BATCH_BYTES,
                    line_bytes: max_line_bytes as usize,
                };
                run(component, &schema, &input, &options, limits, metrics_addr).await
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
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Input(e)) => {
            note!("error: {e:#}");
            ExitCode::from(2)
        }
        Err(Failure::Delivery(e)) => {
            note!("error: {e:#}");
            ExitCode::from(1)
        }
        Err(Failure::Output(e)) => {
            note!("error: writing to standard output: {e}");
            ExitCode::from(1)
        }
    }
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

/// Rows of the current batch, the input line each came from, and a digest of those lines.
struct Batch {
    rows: Rows,
    lines: Vec<u64>,
    digest: Sha256,
}

impl Batch {
    fn new(capacity: usize) -> Batch {
        Batch {
            rows: Rows::new(),
            lines: Vec::with_capacity(capacity),
            digest: Sha256::new(),
        }
    }

    fn push(&mut self, row: &[Datum], line_number: u64, line: &str) {
        if self.rows.is_empty() {
            self.digest.update(line_number.to_be_bytes());
        }
        self.digest.update(line.as_bytes());
        self.digest.update(b"\n");
        self.rows.push(row);
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
        self.digest = Sha256::new();
    }
}

/// What NATS has confirmed so far.
#[derive(Default)]
struct Confirmed {
    rows: u64,
    /// The input line of the last confirmed row.
    line: u64,
}

/// How much one run holds at once.
#[derive(Debug, Clone, Copy)]
struct RunLimits {
    /// Rows per batch (`--batch-size`).
    batch_rows: usize,
    /// Bytes per batch, roughly: its values and its strings.
    batch_bytes: usize,
    /// The longest input line (`--max-line-bytes`).
    line_bytes: usize,
}

async fn run(
    component: &ComponentArgs,
    schema_path: &PathBuf,
    input: &str,
    options: &[(String, String)],
    limits: RunLimits,
    metrics_addr: Option<std::net::SocketAddr>,
) -> Result<(), Failure> {
    let (schema, columns) = read_schema(schema_path)?;
    let reader: Box<dyn tokio::io::AsyncRead + Unpin + Send> = if input == "-" {
        Box::new(tokio::io::stdin())
    } else {
        Box::new(
            tokio::fs::File::open(input)
                .await
                .with_context(|| format!("opening input {input}"))
                .map_err(Failure::Input)?,
        )
    };
    let runtime = component.load()?;
    refuse_preflight(preflight(&runtime, options).await?)?;
    let mut sink = runtime.open(options, &columns).await?;
    if let Some(addr) = metrics_addr {
        serve_metrics(addr, sink.metrics())?;
    }
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

    let mut lines = BoundedLines::new(
        tokio::io::BufReader::with_capacity(1 << 20, reader),
        limits.line_bytes,
    );
    let mut batch = Batch::new(limits.batch_rows.min(1 << 16));
    let mut confirmed = Confirmed::default();
    // What stopped the run early. After bad input, what came before it is still delivered.
    let mut stop: Option<Failure> = None;
    loop {
        let line = match lines.next_line().await {
            Ok(Some(line)) => line,
            Ok(None) => break,
            Err(e) => {
                stop = Some(Failure::Input(e.into()));
                break;
            }
        };
        let line_number = lines.line_number();
        if line.trim().is_empty() {
            continue;
        }
        match parse_line(&schema, line_number, &line) {
            Ok(datums) => batch.push(&datums, line_number, &line),
            Err(e) => {
                stop = Some(Failure::Input(e.into()));
                break;
            }
        }
        if batch.rows.len() >= limits.batch_rows || batch.bytes() >= limits.batch_bytes {
            if let Err(e) = deliver_batch(&mut sink, &mut batch, &mut confirmed).await {
                stop = Some(e);
                break;
            }
            progress.set_position(confirmed.rows);
        }
    }
    // Rows read before a bad line are still delivered; deliver_batch empties the batch, so this
    // is a no-op when the loop stopped on a delivery. A refusal here concerns an earlier line,
    // so it wins.
    let pending = deliver_batch(&mut sink, &mut batch, &mut confirmed)
        .await
        .err();
    progress.finish_and_clear();
    let metrics = sink.metrics().snapshot();
    let _ = sink.close().await;
    let seconds = started.elapsed().as_secs_f64();
    let resent = if metrics.retries > 0 {
        format!(", {} resent after failures", metrics.retries)
    } else {
        String::new()
    };
    let summary = format!(
        "nats-sink: {} rows confirmed; {} messages, {} bytes sent in {seconds:.2} s ({:.0} rows/s){resent}",
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
    let input_error = match (pending, stop) {
        (Some(Failure::Delivery(e)), _) | (None, Some(Failure::Delivery(e))) => {
            note!("{summary}; delivery failed");
            let reached = format!(
                "rows through input line {} ({} rows) are confirmed",
                confirmed.line, confirmed.rows
            );
            let advice = if rerun_can_succeed(&e) {
                format!("{reached}; rerun the same input with the same --batch-size to replay the rest (with dedupe on, a stream drops rows it already holds)")
            } else {
                let who = match e.downcast_ref::<HostError>() {
                    Some(HostError::Runtime(_)) => "the sandbox stopped the sink",
                    _ => "the server refused the rest",
                };
                format!("{reached}; {who}, so a rerun fails the same way until the cause is fixed")
            };
            return Err(Failure::Delivery(e.context(advice)));
        }
        (Some(Failure::Output(e)), _) | (None, Some(Failure::Output(e))) => {
            return Err(Failure::Output(e))
        }
        (Some(Failure::Input(e)), _) | (None, Some(Failure::Input(e))) => Some(e),
        (None, None) => None,
    };
    note!("{summary}; all confirmed");
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

/// Write the batch as one checkpoint and flush it. A refused row is reported with its input
/// line, after the rows before it are flushed.
async fn deliver_batch(
    sink: &mut nats_sink::Sink,
    batch: &mut Batch,
    confirmed: &mut Confirmed,
) -> Result<(), Failure> {
    if batch.rows.is_empty() {
        return Ok(());
    }
    sink.begin_checkpoint(batch.take_checkpoint()).await?;
    let written = sink.write(&batch.rows).await;
    let (accepted, refusal) = match written {
        Ok(()) => (batch.rows.len(), None),
        Err(HostError::Sink(SinkError::InvalidRow(p))) => {
            let line = batch.lines.get(p.row as usize).copied().unwrap_or_default();
            let at = if p.column.is_empty() {
                String::new()
            } else {
                format!(", column `{}`", p.column)
            };
            (
                p.row as usize,
                Some(Failure::Input(anyhow!("line {line}{at}: {}", p.message))),
            )
        }
        Err(e) => {
            batch.clear();
            return Err(Failure::from(e));
        }
    };
    let flushed = sink.flush().await;
    if flushed.is_ok() && accepted > 0 {
        confirmed.rows += accepted as u64;
        confirmed.line = batch.lines[accepted - 1];
    }
    batch.clear();
    flushed.map_err(Failure::from)?;
    refusal.map_or(Ok(()), Err)
}
