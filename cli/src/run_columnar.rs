//! `nats-sink run` over record batches (Parquet, Arrow IPC): the sink's schema from the
//! file's Arrow schema unless `--schema` names one, batches read on a thread of their own,
//! and each checkpoint written as Arrow, at the JSON Lines path's batch size and linger.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::anyhow;
use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use nats_sink::Column;
use nats_sink_cli::input::columnar::{self, BatchReader, ColumnarError, InputFormat};
use nats_sink_rules::schema::Schema;
use tokio::sync::mpsc;

use crate::deliver_arrow::ArrowBatch;
use crate::run::{finish, open_sink, progress_bar, Opened, RunEnd, RunExtras, RunLimits};
use crate::schema_file::read_schema;
use crate::state::ConfirmedPoint;
use crate::{deliver, metrics_endpoint::serve_metrics, run::guarded, signals};
use crate::{ComponentArgs, Failure, GivenOptions};

/// Record batches read ahead of the sink, at most: the one being delivered is apart.
const BATCHES_IN_FLIGHT: usize = 2;

/// The input: its format, its path (`-`: standard input), and `--schema` if given.
pub(crate) struct Source<'a> {
    pub(crate) format: InputFormat,
    pub(crate) path: &'a str,
    pub(crate) schema_path: Option<&'a PathBuf>,
}

enum Read {
    Batch(RecordBatch),
    End,
    Failed(ColumnarError),
}

pub(crate) async fn run(
    component: &ComponentArgs,
    source: Source<'_>,
    options: &GivenOptions,
    limits: RunLimits,
    extras: RunExtras,
) -> Result<(), Failure> {
    if extras.state.is_some() {
        return Err(Failure::Input(anyhow!(
            "--state is not supported with {} input yet (resuming record batches is not implemented); run without it: a rerun of the same file with the same --batch-size gives the same message ids, so a stream with dedupe drops what it already holds",
            source.format
        )));
    }
    let (format, path, batch_rows) = (source.format, source.path.to_string(), limits.batch_rows);
    let reader = tokio::task::spawn_blocking(move || columnar::open(format, &path, batch_rows))
        .await
        .map_err(|e| Failure::Input(anyhow!("{format} input: the reader failed: {e}")))?
        .map_err(|e| {
            Failure::Input(anyhow::Error::from(e).context(format!("input {}", source.path)))
        })?;
    let file_schema = reader.schema();
    let columns = sink_columns(&source, &file_schema)?;
    let Opened {
        runtime,
        target,
        sink,
        ..
    } = open_sink(component, options, &columns).await?;
    if let Some(addr) = extras.metrics_addr {
        serve_metrics(addr, sink.metrics())?;
    }
    let mut signals = signals::Signals::install()
        .map_err(|e| Failure::Delivery(anyhow!("listening for SIGINT and SIGTERM: {e}")))?;
    let started = Instant::now();
    let progress = progress_bar();
    let mut batches = spawn(reader);
    let reopen = deliver::Reopen {
        runtime: runtime.clone(),
        options: options.pairs.clone(),
        columns,
        budget: target.connect.delivery,
    };
    let mut deliverer = deliver::Deliverer::new(sink, ConfirmedPoint::default(), None, reopen);
    let mut batch = ArrowBatch::default();
    // Rows read past the current checkpoint's size, which start the next one.
    let mut carry: Option<RecordBatch> = None;
    let mut oldest: Option<tokio::time::Instant> = None;
    let mut last_read = 0u64;
    let mut input_ended = false;
    let mut stopping: Option<signals::StopSignal> = None;
    let mut stop: Option<Failure> = None;
    let aborted = 'read: loop {
        if stopping.is_some() {
            batches.close();
        }
        let full = batch.rows() >= limits.batch_rows || batch.bytes() >= limits.batch_bytes;
        let deadline = oldest.map(|t| t + limits.linger);
        if full || deadline.is_some_and(|d| d <= tokio::time::Instant::now()) {
            match guarded(
                deliverer.deliver_arrow(&mut batch),
                &mut signals,
                &mut stopping,
            )
            .await
            {
                None => break 'read true,
                Some(Err(e)) => {
                    stop = Some(e);
                    break 'read false;
                }
                Some(Ok(())) => {}
            }
            oldest = None;
            if let Some(rest) = carry.take() {
                oldest = Some(tokio::time::Instant::now());
                carry = batch.push(rest, limits.batch_rows);
            }
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
            read = batches.recv() => match read {
                Some(Read::Batch(read)) => {
                    if batch.rows() == 0 {
                        oldest = Some(tokio::time::Instant::now());
                    }
                    last_read += read.num_rows() as u64;
                    carry = batch.push(read, limits.batch_rows);
                }
                Some(Read::End) => {
                    input_ended = true;
                    break 'read false;
                }
                Some(Read::Failed(e)) => {
                    let e = anyhow::Error::from(e).context(format!("input {}, after row {last_read}", source.path));
                    stop = Some(Failure::Input(e));
                    break 'read false;
                }
                None if stopping.is_some() => break 'read false,
                // The reader thread ended with neither an end nor an error: it panicked on
                // the input. What it read before is delivered.
                None => {
                    stop = Some(Failure::Input(anyhow!(
                        "{format} input: the reader stopped unexpectedly after row {last_read}"
                    )));
                    break 'read false;
                }
            },
            () = tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)), if deadline.is_some() => {}
        }
    };
    // Rows read before a malformed batch are still delivered; a refusal there concerns an
    // earlier row, so it wins.
    let (pending, aborted) = match aborted {
        true => (None, true),
        false => match guarded(
            deliver_rest(&mut deliverer, &mut batch, carry, limits.batch_rows),
            &mut signals,
            &mut stopping,
        )
        .await
        {
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
        resumed_rows: 0,
        started,
        unit: "row",
        resumable: false,
    };
    finish(end, deliverer, progress).await
}

/// Deliver the checkpoint in hand, then the rows carried past it, a checkpoint at a time.
async fn deliver_rest(
    deliverer: &mut deliver::Deliverer,
    batch: &mut ArrowBatch,
    mut carry: Option<RecordBatch>,
    batch_rows: usize,
) -> Result<(), Failure> {
    loop {
        deliverer.deliver_arrow(batch).await?;
        match carry.take() {
            None => return Ok(()),
            Some(rest) => carry = batch.push(rest, batch_rows),
        }
    }
}

/// The sink's columns: `--schema` if given, else derived from the file's Arrow schema; either
/// way checked against the file's fields before anything is sent.
fn sink_columns(source: &Source<'_>, file_schema: &SchemaRef) -> Result<Vec<Column>, Failure> {
    let (schema, columns) = match source.schema_path {
        Some(path) => read_schema(path)?,
        None => derived_schema(source.format, file_schema)?,
    };
    nats_sink_arrow_map::plan_columns(&schema.columns, file_schema.fields()).map_err(|e| {
        Failure::Input(anyhow!(
            "{} input {}: its Arrow schema does not fit the sink's: {e}",
            source.format,
            source.path
        ))
    })?;
    Ok(columns)
}

fn derived_schema(
    format: InputFormat,
    file_schema: &SchemaRef,
) -> Result<(Schema, Vec<Column>), Failure> {
    let refuse = |e: String| {
        Failure::Input(anyhow!(
            "{format} input: no sink schema follows from its Arrow schema: {e}; give one with --schema"
        ))
    };
    let fields = nats_sink_arrow_map::sink_columns(file_schema.fields())
        .map_err(|e| refuse(e.to_string()))?;
    let columns: Vec<Column> = fields
        .iter()
        .map(|f| Column {
            name: f.name.clone(),
            data_type: f.data_type.to_string(),
        })
        .collect();
    let schema = Schema::parse(
        columns
            .iter()
            .map(|c| (c.name.as_str(), c.data_type.as_str())),
    )
    .map_err(|e| refuse(e.to_string()))?;
    Ok((schema, columns))
}

/// Read batches on a blocking thread, in order, at most [`BATCHES_IN_FLIGHT`] ahead.
/// Closing the receiver stops the reader at its next batch.
fn spawn(mut reader: Box<dyn BatchReader>) -> mpsc::Receiver<Read> {
    let (sender, receiver) = mpsc::channel(BATCHES_IN_FLIGHT);
    let sender = Arc::new(sender);
    tokio::task::spawn_blocking(move || loop {
        let read = match reader.next_batch() {
            Ok(Some(batch)) if batch.num_rows() == 0 => continue,
            Ok(Some(batch)) => Read::Batch(batch),
            Ok(None) => Read::End,
            Err(e) => Read::Failed(e),
        };
        let last = !matches!(read, Read::Batch(_));
        if sender.blocking_send(read).is_err() || last {
            return;
        }
    });
    receiver
}
