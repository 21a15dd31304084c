//! `nats-sink run` over record batches (Parquet, Arrow IPC): the sink's schema from the
//! file's Arrow schema unless `--schema` names one, batches read on a thread of their own,
//! and each checkpoint written as Arrow, at the JSON Lines path's batch size and linger.

use std::path::PathBuf;

use anyhow::anyhow;
use arrow_schema::SchemaRef;
use nats_sink::Column;
use nats_sink_cli::input::columnar::{self, InputFormat};
use nats_sink_rules::schema::Schema;
use tokio::sync::mpsc;

use crate::deliver_arrow::{ArrowBatch, ReadBatch};
use crate::read_loop::{LoopStart, Read};
use crate::resume_batches::{self, NumberedBatches};
use crate::run::{
    deliver_input, open_sink, open_state, refuse_state_on_stdin, Input, Opened, Resumed, RunExtras,
    RunLimits,
};
use crate::schema_file::read_schema;
use crate::state::ConfirmedPoint;
use crate::{resume, ComponentArgs, Failure, GivenOptions};

/// Record batches read ahead of the sink, at most: the one being delivered is apart.
const BATCHES_IN_FLIGHT: usize = 2;

/// The input: its format, its path (`-`: standard input), and `--schema` if given.
pub(crate) struct Source<'a> {
    pub(crate) format: InputFormat,
    pub(crate) path: &'a str,
    pub(crate) schema_path: Option<&'a PathBuf>,
}

pub(crate) async fn run(
    component: &ComponentArgs,
    source: Source<'_>,
    options: &GivenOptions,
    limits: RunLimits,
    extras: RunExtras,
) -> Result<(), Failure> {
    refuse_state_on_stdin(&extras, source.path)?;
    let (format, path, batch_rows) = (source.format, source.path.to_string(), limits.batch_rows);
    let reader = tokio::task::spawn_blocking(move || columnar::open(format, &path, batch_rows))
        .await
        .map_err(|e| Failure::Input(anyhow!("{format} input: the reader failed: {e}")))?
        .map_err(|e| {
            Failure::Input(anyhow::Error::from(e).context(format!("input {}", source.path)))
        })?;
    let file_schema = reader.schema();
    let columns = sink_columns(&source, &file_schema)?;
    let mut opened = open_sink(component, options, &columns).await?;
    let batches = NumberedBatches::new(reader);
    let (batches, resumed, first_batch_rows) = match &extras.state {
        None => {
            let fresh = Resumed {
                confirmed: ConfirmedPoint::default(),
                state: None,
                stored: None,
            };
            (batches, fresh, None)
        }
        Some(path) => resume_from(path, &source, &mut opened, limits, batches).await?,
    };
    let rows_before = resumed.confirmed.line;
    let input = Input {
        checkpoint: ArrowBatch::after(rows_before),
        reads: spawn(batches, source.path.to_string(), rows_before),
        start: LoopStart {
            last_read: rows_before,
            first_batch_rows,
        },
    };
    deliver_input(opened, options, columns, resumed, input, limits, &extras).await
}

/// The `--state` at `path`, and the batches positioned just past its confirmed row, with
/// what the stream does not hold of the batch in flight put back to be sent first; the
/// first checkpoint's size when that batch is replayed whole.
async fn resume_from(
    path: &std::path::Path,
    source: &Source<'_>,
    opened: &mut Opened,
    limits: RunLimits,
    mut batches: NumberedBatches,
) -> Result<(NumberedBatches, Resumed, Option<usize>), Failure> {
    let (sink, subject) = (&mut opened.sink, &opened.state_subject);
    let mut state = open_state(path, source.path, sink, subject, limits.batch_rows, true).await?;
    let recorded = state.state.clone();
    // Reading up to the confirmed row decodes what it skips: on a thread of its own.
    let (mut batches, in_flight) = tokio::task::spawn_blocking(move || {
        let in_flight = resume_batches::position(&mut batches, &recorded);
        (batches, in_flight)
    })
    .await
    .map_err(|e| {
        Failure::Delivery(anyhow!(
            "{} input: the reader stopped unexpectedly: {e}",
            source.format
        ))
    })?;
    let in_flight = in_flight?;
    let target = opened.target.clone();
    let resumption = resume::resume(&mut state, target, &opened.reach, in_flight.as_ref()).await?;
    if let Some(in_flight) = in_flight {
        in_flight.put_back(resumption.held, &mut batches);
    }
    let resumed = Resumed {
        confirmed: resumption.confirmed,
        state: Some(state),
        stored: None,
    };
    Ok((batches, resumed, resumption.first_batch_rows))
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

/// Read batches on a blocking thread, in order, at most [`BATCHES_IN_FLIGHT`] ahead; a
/// failure names the rows read before it (`rows_before` were confirmed by earlier runs).
/// Closing the receiver stops the reader at its next batch.
fn spawn(
    mut batches: NumberedBatches,
    path: String,
    rows_before: u64,
) -> mpsc::Receiver<Read<ReadBatch>> {
    let (sender, receiver) = mpsc::channel(BATCHES_IN_FLIGHT);
    tokio::task::spawn_blocking(move || {
        let mut rows_read = rows_before;
        loop {
            let read = match batches.next() {
                Ok(Some(read)) => {
                    rows_read += read.batch.num_rows() as u64;
                    Read::Rows(read)
                }
                Ok(None) => Read::End,
                Err(e) => Read::Failed(
                    anyhow::Error::from(e).context(format!("input {path}, after row {rows_read}")),
                ),
            };
            let last = !matches!(read, Read::Rows(_));
            if sender.blocking_send(read).is_err() || last {
                return;
            }
        }
    });
    receiver
}
