//! `nats-sink run` over record batches (Parquet, Arrow IPC): the sink's schema from the
//! file's Arrow schema unless `--schema` names one, batches read on a thread of their own,
//! and each checkpoint written as Arrow, at the JSON Lines path's batch size and linger.

use std::path::PathBuf;

use anyhow::anyhow;
use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use nats_sink::Column;
use nats_sink_cli::input::columnar::{self, BatchReader, InputFormat};
use nats_sink_rules::schema::Schema;
use tokio::sync::mpsc;

use crate::deliver_arrow::ArrowBatch;
use crate::read_loop::{LoopStart, Read};
use crate::run::{deliver_input, open_sink, Input, Resumed, RunExtras, RunLimits};
use crate::schema_file::read_schema;
use crate::state::ConfirmedPoint;
use crate::{ComponentArgs, Failure, GivenOptions};

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
    let opened = open_sink(component, options, &columns).await?;
    let input = Input {
        checkpoint: ArrowBatch::default(),
        reads: spawn(reader, source.path.to_string()),
        start: LoopStart {
            last_read: 0,
            first_batch_rows: None,
        },
    };
    let resumed = Resumed {
        confirmed: ConfirmedPoint::default(),
        state: None,
    };
    deliver_input(opened, options, columns, resumed, input, limits, &extras).await
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
/// failure names the rows read before it. Closing the receiver stops the reader at its next
/// batch.
fn spawn(mut reader: Box<dyn BatchReader>, path: String) -> mpsc::Receiver<Read<RecordBatch>> {
    let (sender, receiver) = mpsc::channel(BATCHES_IN_FLIGHT);
    tokio::task::spawn_blocking(move || {
        let mut rows_read = 0u64;
        loop {
            let read = match reader.next_batch() {
                Ok(Some(batch)) if batch.num_rows() == 0 => continue,
                Ok(Some(batch)) => {
                    rows_read += batch.num_rows() as u64;
                    Read::Rows(batch)
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
