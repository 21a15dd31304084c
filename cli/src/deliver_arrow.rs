//! Delivering record batches as one checkpoint: the batches go to the sink as one Arrow IPC
//! stream, then a flush; a refused value names its row in the file, after the rows before
//! it are flushed; on core NATS a dropped connection replays the checkpoint.

use std::time::Instant;

use anyhow::anyhow;
use nats_sink::arrow_array::RecordBatch;
use nats_sink::{HostError, Sink, SinkError};
use sha2::{Digest as _, Sha256};

use crate::deliver::{refused_part, Deliverer, RowPlaces};
use crate::read_loop::Checkpoint;
use crate::state::ConfirmedPoint;
use crate::Failure;

/// Record batches of the current checkpoint, and where they start in the file.
#[derive(Default)]
pub(crate) struct ArrowBatch {
    batches: Vec<RecordBatch>,
    rows: usize,
    bytes: usize,
    /// Rows of the file before this checkpoint's first row.
    first_row: u64,
}

/// Record batches: a checkpoint holds `--batch-size` rows however the file's batches are cut.
impl Checkpoint for ArrowBatch {
    type Read = RecordBatch;
    const UNIT: &'static str = "row";

    fn rows(&self) -> usize {
        self.rows
    }

    fn bytes(&self) -> usize {
        self.bytes
    }

    /// Add `batch`'s rows up to `limit` rows in all; the rows past it are handed back for the
    /// next checkpoint, so every full checkpoint holds `limit` rows, as with JSON Lines.
    fn push(&mut self, batch: RecordBatch, limit: usize) -> Option<RecordBatch> {
        let room = limit.saturating_sub(self.rows).max(1);
        let (taken, rest) = if batch.num_rows() > room {
            let rest = batch.slice(room, batch.num_rows() - room);
            (batch.slice(0, room), Some(rest))
        } else {
            (batch, None)
        };
        self.rows += taken.num_rows();
        // Roughly what the batch holds in memory.
        self.bytes += taken.get_array_memory_size();
        self.batches.push(taken);
        rest
    }

    fn last_read_after(batch: &RecordBatch, before: u64) -> u64 {
        before + batch.num_rows() as u64
    }

    async fn deliver(&mut self, deliverer: &mut Deliverer) -> Result<(), Failure> {
        deliverer.deliver_arrow(self).await
    }
}

impl ArrowBatch {
    /// The file's row number (from 1) of the checkpoint's row at `index`.
    fn row_number(&self, index: u64) -> u64 {
        self.first_row + index + 1
    }

    /// Start the next checkpoint, just past the rows this one held.
    fn clear(&mut self) {
        self.first_row += self.rows as u64;
        self.batches.clear();
        self.rows = 0;
        self.bytes = 0;
    }
}

/// The checkpoint id: the same rows at the same place in the file give the same id, so a
/// rerun of the same file with the same batch size replays (a stream drops what it holds).
fn checkpoint_of(first_row: u64, ipc: &[u8]) -> u64 {
    let digest = Sha256::new()
        .chain_update(first_row.to_be_bytes())
        .chain_update(ipc)
        .finalize();
    let mut id = [0u8; 8];
    id.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(id)
}

impl Deliverer {
    /// Write the batches as one checkpoint and flush it, then start the next one. A refused
    /// value is reported with its row in the file, after the rows before it are flushed.
    pub(crate) async fn deliver_arrow(&mut self, batch: &mut ArrowBatch) -> Result<(), Failure> {
        if batch.rows == 0 {
            return Ok(());
        }
        let ipc = nats_sink::arrow::ipc_stream(&batch.batches)
            .map_err(|e| Failure::Delivery(anyhow!("writing the rows as Arrow IPC: {e}")))?;
        let checkpoint = checkpoint_of(batch.first_row, &ipc);
        let started = Instant::now();
        let mut attempt = 0;
        let sent = loop {
            match send(&mut self.sink, checkpoint, batch, &ipc).await {
                Err(e) if self.may_replay(&e, attempt, started) => {
                    attempt += 1;
                    note!(
                        "nats-sink: {e}; replaying checkpoint {checkpoint} (rows {}–{}) on a new connection, attempt {attempt}",
                        batch.row_number(0),
                        batch.row_number(batch.rows as u64 - 1)
                    );
                    self.reconnect(&mut attempt, started).await;
                    self.replays += 1;
                }
                other => break other,
            }
        };
        let outcome = match sent {
            Ok((accepted, refusal)) => {
                if accepted > 0 {
                    self.confirmed = ConfirmedPoint {
                        line: batch.row_number(accepted as u64 - 1),
                        rows: self.confirmed.rows + accepted as u64,
                        checkpoint: Some(checkpoint),
                        ..ConfirmedPoint::default()
                    };
                }
                refusal.map_or(Ok(()), Err)
            }
            Err(e) => Err(Failure::from(e)),
        };
        batch.clear();
        outcome
    }
}

/// One checkpoint's write and flush: the rows NATS confirmed, and the refusal that stopped
/// the write early, if one did.
async fn send(
    sink: &mut Sink,
    checkpoint: u64,
    batch: &ArrowBatch,
    ipc: &[u8],
) -> Result<(usize, Option<Failure>), HostError> {
    let place = |row: u64| batch.row_number(row);
    let places = RowPlaces {
        unit: "row",
        rows: batch.rows,
        place: &place,
    };
    sink.begin_checkpoint(checkpoint).await?;
    let (accepted, refusal) = match sink.write_arrow_ipc(ipc).await {
        Ok(_) => (batch.rows, None),
        Err(HostError::Sink(SinkError::InvalidRow(p))) => {
            let at = if p.column.is_empty() {
                String::new()
            } else {
                format!(", column `{}`", p.column)
            };
            let row = batch.row_number(p.row.into());
            (
                p.row as usize,
                Some(Failure::Input(anyhow!("row {row}{at}: {}", p.message))),
            )
        }
        Err(e) => return refused_part(sink, &places, e),
    };
    match sink.flush().await {
        Ok(()) => Ok((accepted, refusal)),
        Err(e) => refused_part(sink, &places, e),
    }
}
