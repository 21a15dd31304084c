//! `nats-sink run`: read JSON Lines, deliver them in batches (each a checkpoint, flushed and
//! confirmed), linger for slow input, stop cleanly on a signal, resume from `--state`.
//! Parquet and Arrow input go to `run_columnar`; both open the sink and `--state` here, and
//! hand their reader to `deliver_input`, which runs the one read loop (`read_loop`) and
//! reports how the run ended.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{anyhow, Context as _};
use indicatif::{ProgressBar, ProgressStyle};
use nats_sink::HostError;

use crate::input_batch::InputBatch;
use crate::read_loop::{read_and_deliver, Checkpoint, LoopEnd, LoopStart, Read};
use crate::run_columnar;
use crate::schema_file::read_schema;
use crate::state::ConfirmedPoint;
use crate::{
    deliver, first_call, metrics_endpoint::serve_metrics, preflight, reader, refuse_preflight,
    resume, signals, state,
};
use crate::{ComponentArgs, Failure, GivenOptions};
use nats_sink_cli::input::columnar::InputFormat;
use nats_sink_cli::input::debezium::ChangeSchema;
use nats_sink_rules::schema::Schema;
use std::sync::Arc;

use crate::reader::LineParser;

/// How much one run holds at once, and how long a row may wait.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RunLimits {
    /// Rows per batch (`--batch-size`).
    pub(crate) batch_rows: usize,
    /// Bytes per batch, roughly: its values and its strings.
    pub(crate) batch_bytes: usize,
    /// The longest input line (`--max-line-bytes`).
    pub(crate) line_bytes: usize,
    /// How long a batch's oldest row may wait before a partial batch goes (`--linger-ms`).
    pub(crate) linger: std::time::Duration,
}

/// The rest of `run`'s options.
pub(crate) struct RunExtras {
    pub(crate) metrics_addr: Option<std::net::SocketAddr>,
    pub(crate) state: Option<PathBuf>,
}

/// How long the final flush of a stopping run may take before the sink is dropped; every
/// batch was flushed already, so it has nothing to wait for.
pub(crate) const SHUTDOWN_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// Await `work`. A first signal meanwhile is recorded and the work goes on (the run stops
/// reading and delivers what it read); a second one ends the wait at once (`None`).
pub(crate) async fn guarded<T>(
    work: impl std::future::Future<Output = T>,
    signals: &mut signals::Signals,
    stopping: &mut Option<signals::StopSignal>,
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

pub(crate) async fn run(
    component: &ComponentArgs,
    schema_path: Option<&PathBuf>,
    input: &str,
    input_format: Option<InputFormat>,
    options: &GivenOptions,
    limits: RunLimits,
    extras: RunExtras,
) -> Result<(), Failure> {
    let format = InputFormat::of(input_format, input);
    if format.is_columnar() {
        let source = run_columnar::Source {
            format,
            path: input,
            schema_path,
        };
        return run_columnar::run(component, source, options, limits, extras).await;
    }
    let Some(schema_path) = schema_path else {
        return Err(Failure::Input(anyhow!(
            "--schema is needed for {format} input (a Parquet or Arrow input carries its own)"
        )));
    };
    let (schema, columns) = read_schema(schema_path)?;
    let parser = line_parser(format, schema, options);
    refuse_state_on_stdin(&extras, input)?;
    let mut file = match input {
        "-" => None,
        path => Some(
            tokio::fs::File::open(path)
                .await
                .with_context(|| format!("opening input {input}"))
                .map_err(Failure::Input)?,
        ),
    };
    let mut opened = open_sink(component, options, &columns).await?;
    let (state, plan) = match &extras.state {
        None => (None, resume::Plan::fresh()),
        Some(path) => {
            let (sink, subject) = (&mut opened.sink, &opened.state_subject);
            let mut state =
                open_state(path, input, sink, subject, limits.batch_rows, false).await?;
            let target = &opened.target;
            let plan = resume::plan(
                &mut state,
                target.clone(),
                &opened.reach,
                limits.line_bytes,
                &parser,
            )
            .await?;
            (Some(state), plan)
        }
    };
    let reader: Box<dyn tokio::io::AsyncRead + Unpin + Send> = match file.take() {
        None => Box::new(tokio::io::stdin()),
        // A pipe (`<(cmd)`, a fifo, /dev/stdin) cannot seek: only a resume needs to.
        Some(file) if plan.start.offset == 0 => Box::new(file),
        Some(mut file) => {
            use tokio::io::AsyncSeekExt as _;
            file.seek(std::io::SeekFrom::Start(plan.start.offset))
                .await
                .with_context(|| {
                    format!(
                        "--state resumes {input} at byte {}, which needs a regular file",
                        plan.start.offset
                    )
                })
                .map_err(Failure::Input)?;
            Box::new(file)
        }
    };
    let rows = reader::spawn(
        reader,
        parser,
        plan.start,
        limits.line_bytes,
        limits.batch_rows,
    );
    let input = Input {
        checkpoint: InputBatch::new(limits.batch_rows.min(1 << 16)),
        reads: rows,
        start: LoopStart {
            last_read: plan.start.line,
            first_batch_rows: plan.first_batch_rows,
        },
    };
    let resumed = Resumed {
        confirmed: plan.confirmed,
        state,
        stored: plan.stored,
    };
    deliver_input(opened, options, columns, resumed, input, limits, &extras).await
}

/// How `format`'s lines become rows of `schema`. A Debezium change's primary key is the
/// sink's `primary_key` (none for an append-only sink), checked in every `before` and `after`.
fn line_parser(format: InputFormat, schema: Schema, options: &GivenOptions) -> LineParser {
    match format {
        InputFormat::Debezium => {
            let primary_key: Vec<&str> = options
                .pairs
                .iter()
                .filter(|(name, _)| name == "primary_key")
                .flat_map(|(_, columns)| columns.split(',').map(str::trim))
                .collect();
            LineParser::Debezium(Arc::new(ChangeSchema::new(schema, &primary_key)))
        }
        _ => LineParser::JsonLines(Arc::new(schema)),
    }
}

/// `--state` with standard input, refused: it cannot be read again.
pub(crate) fn refuse_state_on_stdin(extras: &RunExtras, input: &str) -> Result<(), Failure> {
    match extras.state.is_some() && input == "-" {
        true => Err(Failure::Input(anyhow!(
            "--state needs a file input: standard input cannot be read again, so a later run \
             could neither check nor skip what this one confirmed"
        ))),
        false => Ok(()),
    }
}

/// The `--state` file at `path` for this run of `input` on `sink` (checked against both), or
/// a fresh one.
pub(crate) async fn open_state(
    path: &std::path::Path,
    input: &str,
    sink: &mut nats_sink::Sink,
    state_subject: &str,
    batch_rows: usize,
    record_batches: bool,
) -> Result<state::StateFile, Failure> {
    // A resumed run reads on from where it stopped: only a regular file keeps its bytes.
    let regular = std::fs::metadata(input).is_ok_and(|m| m.is_file());
    if !regular {
        return Err(Failure::Input(anyhow::anyhow!(
            "--state needs --input to name a regular file, which a resumed run reads on from where it stopped; {input} is not one (a pipe, a device or missing)"
        )));
    }
    let fresh = state::RunState::fresh(
        std::fs::canonicalize(input)
            .with_context(|| format!("input {input}"))
            .map_err(Failure::Input)?,
        sink.sink_id().await?,
        state_subject.to_string(),
        batch_rows as u32,
        record_batches,
    );
    state::StateFile::open(path, fresh).map_err(Failure::Input)
}

/// An input ready to be delivered: an empty checkpoint of its kind, the reader's channel,
/// and where reading starts.
pub(crate) struct Input<C: Checkpoint> {
    pub(crate) checkpoint: C,
    pub(crate) reads: tokio::sync::mpsc::Receiver<Read<C::Read>>,
    pub(crate) start: LoopStart,
}

/// What earlier runs with the same `--state` confirmed, and the state file (none without
/// `--state`).
pub(crate) struct Resumed {
    pub(crate) confirmed: ConfirmedPoint,
    pub(crate) state: Option<state::StateFile>,
    /// What the stream holds of the batch the run replays first, left out of its replay.
    pub(crate) stored: Option<nats_sink::resume::Stored>,
}

/// Deliver `input` on the opened sink, checkpoint by checkpoint, then close the sink and
/// report how the run ended.
pub(crate) async fn deliver_input<C: Checkpoint>(
    opened: Opened,
    options: &GivenOptions,
    columns: Vec<nats_sink::Column>,
    resumed: Resumed,
    mut input: Input<C>,
    limits: RunLimits,
    extras: &RunExtras,
) -> Result<(), Failure> {
    let Opened {
        runtime,
        target,
        mut sink,
        ..
    } = opened;
    if let Some(stored) = resumed.stored {
        sink.skip_stored(stored);
    }
    if let Some(addr) = extras.metrics_addr {
        serve_metrics(addr, sink.metrics())?;
    }
    let mut signals = signals::Signals::install()
        .context("listening for SIGINT and SIGTERM")
        .map_err(Failure::Delivery)?;
    let started = Instant::now();
    let progress = progress_bar();
    let resumed_rows = resumed.confirmed.rows;
    let resumable = resumed.state.is_some();
    let reopen = deliver::Reopen {
        runtime,
        options: options.pairs.clone(),
        columns,
        budget: target.connect.delivery,
    };
    let mut deliverer = deliver::Deliverer::new(sink, resumed.confirmed, resumed.state, reopen);
    let ended = read_and_deliver(
        &mut input.checkpoint,
        input.reads,
        &mut deliverer,
        &mut signals,
        limits,
        input.start,
        &progress,
    )
    .await;
    let end = RunEnd {
        ended,
        resumed_rows,
        started,
        unit: C::UNIT,
        resumable,
    };
    finish(end, deliverer, progress).await
}

/// A sink opened with the options: the runtime (to reopen it), where it publishes, and what
/// the host lets it reach.
pub(crate) struct Opened {
    pub(crate) runtime: nats_sink::SinkRuntime,
    pub(crate) target: nats_sink::Target,
    /// What a `--state` file records this run writes to ([`state_subject`]).
    pub(crate) state_subject: String,
    pub(crate) reach: nats_sink::Reach,
    pub(crate) sink: nats_sink::Sink,
}

/// Load the component, resolve and check the options, and open the sink for `columns`.
pub(crate) async fn open_sink(
    component: &ComponentArgs,
    options: &GivenOptions,
    columns: &[nats_sink::Column],
) -> Result<Opened, Failure> {
    let runtime = component.load()?;
    let target = runtime
        .resolve(&options.pairs)
        .await
        .map_err(|e| first_call(options.secret.host_error(e)))?;
    let reach = runtime.reach(&options.pairs);
    refuse_preflight(preflight(&target, &reach, options)?)?;
    let sink = runtime
        .open(&options.pairs, columns)
        .await
        .map_err(|e| options.secret.host_error(e))?;
    Ok(Opened {
        runtime,
        state_subject: state_subject(&target, options),
        target,
        reach,
        sink,
    })
}

/// What a `--state` file records the run writes to: the subject and, for an upsert sink, the
/// options that make each row's key. A resume under other keys would leave the keys written
/// before under their old names, so the state refuses it (options as given: an option left
/// out and the same value given count as different, which only refuses more).
fn state_subject(target: &nats_sink::Target, options: &GivenOptions) -> String {
    if target.connect.kv.is_none() {
        return target.subject.clone();
    }
    let given = |key: &str| {
        options
            .pairs
            .iter()
            .find(|(k, _)| k == key)
            .map_or("(not given)", |(_, v)| v.as_str())
    };
    format!(
        "{} (primary_key={}, key_format={}, key_encoding={})",
        target.subject,
        given("primary_key"),
        given("key_format"),
        given("key_encoding")
    )
}

/// How the read loop ended, for the summary and the exit status.
pub(crate) struct RunEnd {
    pub(crate) ended: LoopEnd,
    /// Rows earlier runs with the same `--state` confirmed.
    pub(crate) resumed_rows: u64,
    pub(crate) started: Instant,
    /// What the input counts in: "line" (JSON Lines) or "row" (record batches).
    pub(crate) unit: &'static str,
    /// `--state` was given, so a rerun with it continues.
    pub(crate) resumable: bool,
}

/// Close the sink, print the summary, and turn how the run ended into its outcome.
pub(crate) async fn finish(
    end: RunEnd,
    deliverer: deliver::Deliverer,
    progress: ProgressBar,
) -> Result<(), Failure> {
    let RunEnd {
        ended,
        resumed_rows,
        started,
        unit,
        resumable,
    } = end;
    progress.finish_and_clear();
    let metrics = deliverer.metrics();
    let confirmed = deliverer.confirmed.clone();
    let replays = deliverer.replays;
    if !ended.aborted {
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
    // A resumed run's total counts earlier runs too; its messages, bytes and rate are its own.
    let earlier = match resumed_rows {
        0 => String::new(),
        n => format!(
            " ({} in this run, {n} by earlier runs with this --state)",
            confirmed.rows.saturating_sub(n)
        ),
    };
    let summary = format!(
        "nats-sink: {} rows confirmed{earlier}; {} messages, {} bytes sent in {seconds:.2} s ({:.0} rows/s){resent}{replayed}",
        confirmed.rows,
        metrics.messages,
        metrics.payload_bytes,
        confirmed.rows.saturating_sub(resumed_rows) as f64 / seconds.max(1e-9),
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
    if let (true, Some(signal)) = (ended.aborted, ended.stopping) {
        let unconfirmed = if ended.last_read > confirmed.line {
            format!(
                "{unit}s {}–{} read but not confirmed",
                confirmed.line + 1,
                ended.last_read
            )
        } else {
            format!("every {unit} read is confirmed")
        };
        note!("{summary}; stopped at once by a second signal: confirmed through {unit} {}; {unconfirmed}", confirmed.line);
        return Err(Failure::Stopped(signal.exit_code()));
    }
    let input_error = match (ended.pending, ended.stop) {
        (Some(Failure::Delivery(e)), _) | (None, Some(Failure::Delivery(e))) => {
            note!("{summary}; delivery failed");
            let reached = format!(
                "rows through input {unit} {} ({} rows) are confirmed",
                confirmed.line, confirmed.rows
            );
            let advice = if rerun_can_succeed(&e) {
                let how = match resumable {
                    true => "rerun with the same --state to continue from there",
                    false => "rerun the same input with the same --batch-size to replay the rest (with dedupe on, a stream drops rows it already holds)",
                };
                format!("{reached}; {how}")
            } else {
                let who = match e.downcast_ref::<HostError>() {
                    Some(HostError::Runtime(_)) => "the sandbox stopped the sink",
                    Some(HostError::Sink(_)) => "the server refused delivery",
                    // Not the sink's: the --state file, or the reader (the message says which).
                    _ => "this machine failed the run, not the server",
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
    match ended.stopping {
        Some(signal) if input_error.is_none() => {
            note!(
                "{summary}; all confirmed; stopped by {}: confirmed through {unit} {}",
                signal.name(),
                confirmed.line
            );
            if !ended.input_ended {
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

/// A spinner with the rows confirmed and their rate, on a terminal only.
pub(crate) fn progress_bar() -> ProgressBar {
    if std::io::stderr().is_terminal() {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {human_pos} rows  {per_sec}  {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar
    } else {
        ProgressBar::hidden()
    }
}

/// True when the failure may pass on its own (a connection or a timeout), so replaying the
/// same input can succeed; false for a refusal by the server or the sandbox, which repeats.
pub(crate) fn rerun_can_succeed(error: &anyhow::Error) -> bool {
    matches!(error.downcast_ref::<HostError>(), Some(HostError::Sink(e)) if crate::deliver::may_pass(e))
}

#[cfg(test)]
mod tests {
    use nats_sink::{ClosedAfter, Closure, Failure, SinkError};

    use super::*;

    fn closed(after: ClosedAfter, message: &str) -> anyhow::Error {
        let error = HostError::Sink(SinkError::Closed(Closure {
            after,
            cause: Failure {
                message: message.into(),
                core_in_doubt: false,
            },
        }));
        anyhow::Error::from(error).context("line 7")
    }

    /// The exit's advice follows the closing failure's kind, not its words.
    #[test]
    fn a_rerun_can_succeed_after_a_connection_or_a_timeout_only() {
        assert!(rerun_can_succeed(&closed(ClosedAfter::Connection, "x")));
        assert!(rerun_can_succeed(&closed(ClosedAfter::Timeout, "x")));
        assert!(!rerun_can_succeed(&closed(
            ClosedAfter::Publish,
            "the sink failed earlier (connection: timeout: ...)"
        )));
        assert!(!rerun_can_succeed(&closed(ClosedAfter::Close, "timeout:")));
        let timeout = HostError::Sink(SinkError::Timeout(Failure {
            message: "no ack".into(),
            core_in_doubt: false,
        }));
        assert!(rerun_can_succeed(&anyhow::Error::from(timeout)));
        assert!(!rerun_can_succeed(&anyhow::anyhow!("connection: timeout:")));
    }
}
