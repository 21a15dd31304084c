//! `nats-sink`: sink JSON Lines into NATS through the component; validate and describe options.
//!
//! Exit codes: 0 done; 2 bad options, schema or input; 1 delivery failure.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{anyhow, Context as _};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use nats_sink::input::parse_line;
use nats_sink::{flatten_row, Column, HostError, Row, SinkError, SinkRuntime};
use nats_sink_guest::schema::Schema;
use tokio::io::AsyncBufReadExt as _;

#[derive(Parser)]
#[command(
    name = "nats-sink",
    version,
    about = "A NATS sink connector running as a WebAssembly component"
)]
struct Cli {
    /// The sink component; defaults to the one the build produces (target/nats-sink.wasm).
    #[arg(long, global = true)]
    component: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

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
        /// A sink option, as in `WITH (key='value')`; repeat for each.
        #[arg(long = "with", value_name = "KEY=VALUE", value_parser = parse_option)]
        options: Vec<(String, String)>,
        /// Rows per write call.
        #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        batch_size: u32,
    },
    /// Print every problem with the options; exit 2 if there is any.
    Validate {
        #[arg(long = "with", value_name = "KEY=VALUE", value_parser = parse_option)]
        options: Vec<(String, String)>,
    },
    /// List every option with whether it is required, its default and what it does.
    Describe,
}

fn parse_option(text: &str) -> Result<(String, String), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not KEY=VALUE"))?;
    Ok((key.trim().to_string(), value.to_string()))
}

/// How a run ended badly: the caller's input (exit 2) or delivery (exit 1).
enum Failure {
    Input(anyhow::Error),
    Delivery(anyhow::Error),
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
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("NATS_SINK_LOG"))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let component = cli
        .component
        .clone()
        .unwrap_or_else(nats_sink::default_component_path);
    let outcome = match cli.command {
        Command::Run {
            schema,
            input,
            options,
            batch_size,
        } => run(&component, &schema, &input, &options, batch_size).await,
        Command::Validate { options } => validate(&component, &options).await,
        Command::Describe => describe(&component).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Input(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
        Err(Failure::Delivery(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn load(component: &PathBuf) -> Result<SinkRuntime, Failure> {
    SinkRuntime::load(component)
        .map_err(|e| Failure::Delivery(anyhow!(e).context("loading the sink component")))
}

async fn validate(component: &PathBuf, options: &[(String, String)]) -> Result<(), Failure> {
    let problems = load(component)?.validate(options).await?;
    if problems.is_empty() {
        println!("options are valid");
        return Ok(());
    }
    for p in &problems {
        println!("{}", nats_sink::describe_option_problem(p));
    }
    Err(Failure::Input(anyhow!(
        "{} problem(s) with the options",
        problems.len()
    )))
}

async fn describe(component: &PathBuf) -> Result<(), Failure> {
    let options = load(component)?.describe().await?;
    let width = options.iter().map(|o| o.name.len()).max().unwrap_or(0);
    for o in options {
        let required = if o.required { "required" } else { "optional" };
        let default = if o.default_value.is_empty() {
            String::new()
        } else {
            format!(" [default: {}]", o.default_value)
        };
        println!("{:width$}  {required}  {}{default}", o.name, o.doc);
    }
    Ok(())
}

#[derive(serde::Deserialize)]
struct SchemaFile {
    columns: Vec<SchemaColumn>,
}

#[derive(serde::Deserialize)]
struct SchemaColumn {
    name: String,
    #[serde(rename = "type")]
    data_type: String,
}

fn read_schema(path: &PathBuf) -> Result<(Schema, Vec<Column>), Failure> {
    let read = || -> anyhow::Result<(Schema, Vec<Column>)> {
        let text = std::fs::read_to_string(path)?;
        let file: SchemaFile = serde_json::from_str(&text)?;
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

/// Rows of the current batch and the input line each came from.
struct Batch {
    rows: Vec<Row>,
    lines: Vec<u64>,
}

async fn run(
    component: &PathBuf,
    schema_path: &PathBuf,
    input: &str,
    options: &[(String, String)],
    batch_size: u32,
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
    let runtime = load(component)?;
    let mut sink = runtime.open(options, &columns).await?;
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

    let mut lines = tokio::io::BufReader::with_capacity(1 << 20, reader).lines();
    let mut batch = Batch {
        rows: Vec::with_capacity(batch_size as usize),
        lines: Vec::new(),
    };
    let mut line_number = 0u64;
    let mut rows_sent = 0u64;
    // What stopped the run early. After bad input, what came before it is still flushed.
    let mut stop: Option<Failure> = None;
    loop {
        let line = match lines.next_line().await {
            Ok(Some(line)) => line,
            Ok(None) => break,
            Err(e) => {
                stop = Some(Failure::Input(
                    anyhow!(e).context(format!("reading line {}", line_number + 1)),
                ));
                break;
            }
        };
        line_number += 1;
        if line.trim().is_empty() {
            continue;
        }
        match parse_line(&schema, line_number, &line) {
            Ok(datums) => {
                batch.rows.push(flatten_row(datums));
                batch.lines.push(line_number);
            }
            Err(e) => {
                stop = Some(Failure::Input(e.into()));
                break;
            }
        }
        if batch.rows.len() >= batch_size as usize {
            if let Err(e) = write_batch(&mut sink, &mut batch, &mut rows_sent).await {
                stop = Some(e);
                break;
            }
            progress.set_position(rows_sent);
        }
    }
    // Rows read before a bad line are still written; write_batch empties the batch, so this is
    // a no-op when the loop stopped on a write. A refusal here concerns an earlier line, so it wins.
    let pending = write_batch(&mut sink, &mut batch, &mut rows_sent)
        .await
        .err();
    let input_error = match (pending, stop) {
        (Some(Failure::Delivery(e)), _) | (None, Some(Failure::Delivery(e))) => {
            return Err(Failure::Delivery(e))
        }
        (Some(Failure::Input(e)), _) | (None, Some(Failure::Input(e))) => Some(e),
        (None, None) => None,
    };
    let flushed = sink.flush().await;
    progress.finish_and_clear();
    let stats = sink.stats();
    let _ = sink.close().await;
    flushed.map_err(|e| {
        Failure::Delivery(anyhow!(e).context(format!("flushing after {rows_sent} rows")))
    })?;

    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "nats-sink: {rows_sent} rows, {} messages, {} bytes in {seconds:.2} s ({:.0} rows/s); all confirmed",
        stats.messages,
        stats.payload_bytes,
        rows_sent as f64 / seconds.max(1e-9),
    );
    match input_error {
        Some(e) => Err(Failure::Input(
            e.context(format!("stopped after {rows_sent} delivered rows")),
        )),
        None => Ok(()),
    }
}

/// Write the batch; a refused row is reported with its input line.
async fn write_batch(
    sink: &mut nats_sink::Sink,
    batch: &mut Batch,
    rows_sent: &mut u64,
) -> Result<(), Failure> {
    if batch.rows.is_empty() {
        return Ok(());
    }
    let result = sink.write(&batch.rows).await;
    let accepted = match &result {
        Ok(()) => batch.rows.len(),
        Err(HostError::Sink(SinkError::InvalidRow(p))) => p.row as usize,
        Err(_) => 0,
    };
    *rows_sent += accepted as u64;
    let outcome = match result {
        Ok(()) => Ok(()),
        Err(HostError::Sink(SinkError::InvalidRow(p))) => {
            let line = batch.lines.get(p.row as usize).copied().unwrap_or_default();
            let at = if p.column.is_empty() {
                String::new()
            } else {
                format!(", column `{}`", p.column)
            };
            Err(Failure::Input(anyhow!("line {line}{at}: {}", p.message)))
        }
        Err(e) => Err(Failure::from(e)),
    };
    batch.rows.clear();
    batch.lines.clear();
    outcome
}
