//! `nats-sink`: sink JSON Lines into NATS through the component; validate and describe options.
//!
//! Exit codes: 0 done; 2 bad options, schema or input; 1 delivery failure.

use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::anyhow;
use clap::{Parser, Subcommand};
use nats_sink::{HostError, SinkRuntime};

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
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

mod check;
mod deliver;
mod deliver_arrow;
mod input_batch;
mod metrics_endpoint;
mod options;
mod read_loop;
mod reader;
mod resume;
mod resume_batches;
mod run;
mod run_columnar;
mod schema_file;
mod secret_values;
mod signals;
mod state;

use run::{run, RunExtras, RunLimits};

use check::check;
use options::{GivenOptions, SinkOptions};

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
        /// JSON file: {"columns":[{"name":"id","type":"integer"}, ...]}. Needed for JSON
        /// Lines; for Parquet and Arrow input it overrides the schema derived from the file's
        /// (for jsonb or numeric stored as plain text).
        #[arg(long)]
        schema: Option<PathBuf>,
        /// The input file: JSON Lines, Parquet (`.parquet`), an Arrow IPC file (`.arrow`,
        /// `.feather`) or stream (`.arrows`), by extension unless --input-format says; `-` (the
        /// default) is standard input.
        #[arg(long, default_value = "-")]
        input: String,
        /// What --input holds, whatever its extension.
        #[arg(long, value_enum, value_name = "FORMAT")]
        input_format: Option<nats_sink_cli::input::columnar::InputFormat>,
        #[command(flatten)]
        options: SinkOptions,
        /// Rows per batch (for Debezium input, changes: an update is one). Each batch is a
        /// checkpoint: written, then flushed. Its rows' message
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

/// A failure of a command's first call into the component. A memory limit it cannot even
/// start within is the caller's `--memory-limit-mib`: bad usage (exit 2), not delivery.
fn first_call(error: HostError) -> Failure {
    match &error {
        HostError::Runtime(e) if e.kind() == nats_sink::RuntimeErrorKind::MemoryLimit => {
            Failure::Input(
                anyhow!(error).context("--memory-limit-mib is too small for the component"),
            )
        }
        _ => Failure::from(error),
    }
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
                input_format,
                options,
                batch_size,
                max_line_bytes,
                metrics_addr,
                linger_ms,
                state,
            } => {
                let options = options.given().map_err(Failure::Input)?;
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
                run(
                    component,
                    schema.as_ref(),
                    &input,
                    input_format,
                    &options,
                    limits,
                    extras,
                )
                .await
            }
            Command::Validate { options } => {
                validate(component, &options.given().map_err(Failure::Input)?).await
            }
            Command::Check { options } => {
                check(component, &options.given().map_err(Failure::Input)?).await
            }
            Command::Describe => describe(component).await,
        }
    }
    .await;
    let code: u8 = match outcome {
        Ok(()) => 0,
        Err(Failure::Stopped(code)) => code,
        Err(Failure::Input(e)) => {
            note!("error: {}", bounded(&format!("{e:#}")));
            2
        }
        Err(Failure::Delivery(e)) => {
            note!("error: {}", bounded(&format!("{e:#}")));
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

/// An error message of at most about 2,000 bytes: one that quotes a huge input (an 8 MB key,
/// a 1 MB number) keeps its start and its end, where the line, the cause and the advice are.
fn bounded(message: &str) -> std::borrow::Cow<'_, str> {
    const KEPT: usize = 1000;
    if message.len() <= 2 * KEPT + 100 {
        return message.into();
    }
    let head = &message[..message.floor_char_boundary(KEPT)];
    let tail = &message[message.ceil_char_boundary(message.len() - KEPT)..];
    let left_out = message.len() - head.len() - tail.len();
    format!("{head} … ({left_out} bytes left out) … {tail}").into()
}

/// The options' problems that only the host can find (files, keys), as bad options, for the
/// target the component resolved.
fn preflight(
    target: &nats_sink::Target,
    reach: &nats_sink::Reach,
    options: &GivenOptions,
) -> Result<Vec<nats_sink::preflight::Problem>, Failure> {
    Ok(nats_sink::preflight::check(&target.connect, reach)
        .map_err(refused)?
        .into_iter()
        .map(|p| options.secret.preflight_problem(p))
        .collect())
}

/// The host's policy refused what the component asked to reach: not the user's options.
fn refused(error: nats_sink::wit::TransportError) -> Failure {
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

async fn validate(component: &ComponentArgs, options: &GivenOptions) -> Result<(), Failure> {
    let runtime = component.load()?;
    let mut problems: Vec<String> = runtime
        .validate(&options.pairs)
        .await
        .map_err(first_call)?
        .into_iter()
        .map(|p| nats_sink::describe_option_problem(&options.secret.option_problem(p)))
        .collect();
    // What `run` would also refuse: files and keys, once the options themselves are valid.
    if problems.is_empty() {
        let target = runtime
            .resolve(&options.pairs)
            .await
            .map_err(|e| options.secret.host_error(e))?;
        problems = preflight(&target, &runtime.reach(&options.pairs), options)?
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
    let options = component.load()?.describe().await.map_err(first_call)?;
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
