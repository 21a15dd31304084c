//! `nats-sink run`: read JSON Lines, deliver them in batches (each a checkpoint, flushed and
//! confirmed), linger for slow input, stop cleanly on a signal, resume from `--state`.
//! Parquet and Arrow input go to `run_columnar`, which shares the opening and the ending.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{anyhow, Context as _};
use indicatif::{ProgressBar, ProgressStyle};
use nats_sink::{HostError, SinkError};

use crate::input_batch::InputBatch;
use crate::run_columnar;
use crate::schema_file::read_schema;
use crate::{
    deliver, first_call, metrics_endpoint::serve_metrics, preflight, reader, refuse_preflight,
    resume, signals, state,
};
use crate::{ComponentArgs, Failure, GivenOptions};
use nats_sink_cli::input::columnar::InputFormat;

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
    use reader::Read;

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
            "--schema is needed for JSON Lines input (a Parquet or Arrow input carries its own)"
        )));
    };
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
    let Opened {
        runtime,
        target,
        reach,
        mut sink,
    } = open_sink(component, options, &columns).await?;
    let (state, plan) = match &extras.state {
        None => (None, resume::Plan::fresh()),
        Some(path) => {
            // A resumed run reads on from a byte offset: only a regular file keeps its bytes.
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
                target.subject.clone(),
                limits.batch_rows as u32,
            );
            let mut state = state::StateFile::open(path, fresh).map_err(Failure::Input)?;
            let plan = resume::plan(&mut state, target.clone(), &reach, limits.line_bytes).await?;
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
    if let Some(addr) = extras.metrics_addr {
        serve_metrics(addr, sink.metrics())?;
    }
    let mut signals = signals::Signals::install()
        .context("listening for SIGINT and SIGTERM")
        .map_err(Failure::Delivery)?;
    let started = Instant::now();

    let progress = progress_bar();

    let resumed_rows = plan.confirmed.rows;
    let mut rows = reader::spawn(
        reader,
        std::sync::Arc::new(schema),
        plan.start,
        limits.line_bytes,
        limits.batch_rows,
    );
    let reopen = deliver::Reopen {
        runtime: runtime.clone(),
        options: options.pairs.clone(),
        columns,
        budget: target.connect.delivery,
    };
    let mut deliverer = deliver::Deliverer::new(sink, plan.confirmed, state, reopen);
    let mut batch = InputBatch::new(limits.batch_rows.min(1 << 16));
    // The first batch of a resumed run replays the batch in flight at the crash: the same
    // rows, so the same checkpoint id; no timer splits it.
    let mut first_batch_rows = plan.first_batch_rows;
    // When the batch's oldest row arrived, for the linger deadline.
    let mut oldest: Option<tokio::time::Instant> = None;
    let mut last_read = plan.start.line;
    let mut input_ended = false;
    let mut stopping: Option<signals::StopSignal> = None;
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
                    // For a test (or an operator) to see a row held in the batch.
                    tracing::trace!(line = row.line, "row read");
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
                None if stopping.is_some() => break 'read false,
                // Closed with neither an end nor a failure: the reader task died. What it
                // read is delivered; the run must not pass for complete.
                None => {
                    stop = Some(Failure::Delivery(anyhow!(
                        "the input reader stopped unexpectedly after line {last_read}"
                    )));
                    break 'read false;
                }
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
    let end = RunEnd {
        aborted,
        pending,
        stop,
        stopping,
        input_ended,
        last_read,
        resumed_rows,
        started,
        unit: "line",
        resumable: extras.state.is_some(),
    };
    finish(end, deliverer, progress).await
}

/// A sink opened with the options: the runtime (to reopen it), where it publishes, and what
/// the host lets it reach.
pub(crate) struct Opened {
    pub(crate) runtime: nats_sink::SinkRuntime,
    pub(crate) target: nats_sink::Target,
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
        target,
        reach,
        sink,
    })
}

/// How the read loop ended, for the summary and the exit status.
pub(crate) struct RunEnd {
    /// A second signal stopped the run at once.
    pub(crate) aborted: bool,
    /// The final delivery's failure, and what stopped the loop.
    pub(crate) pending: Option<Failure>,
    pub(crate) stop: Option<Failure>,
    pub(crate) stopping: Option<signals::StopSignal>,
    pub(crate) input_ended: bool,
    /// The last line (or row) read.
    pub(crate) last_read: u64,
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
        aborted,
        pending,
        stop,
        stopping,
        input_ended,
        last_read,
        resumed_rows,
        started,
        unit,
        resumable,
    } = end;
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
        // Rows this run confirmed: a resumed run's total counts earlier runs too.
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
    if let (true, Some(signal)) = (aborted, stopping) {
        let unconfirmed = if last_read > confirmed.line {
            format!(
                "{unit}s {}–{last_read} read but not confirmed",
                confirmed.line + 1
            )
        } else {
            format!("every {unit} read is confirmed")
        };
        note!("{summary}; stopped at once by a second signal: confirmed through {unit} {}; {unconfirmed}", confirmed.line);
        return Err(Failure::Stopped(signal.exit_code()));
    }
    let input_error = match (pending, stop) {
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
    match stopping {
        Some(signal) if input_error.is_none() => {
            note!(
                "{summary}; all confirmed; stopped by {}: confirmed through {unit} {}",
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
    match error.downcast_ref::<HostError>() {
        Some(HostError::Sink(SinkError::Connection(_) | SinkError::Timeout(_))) => true,
        Some(HostError::Sink(SinkError::Closed(cause))) => {
            cause.contains("connection:") || cause.contains("timeout:")
        }
        _ => false,
    }
}
