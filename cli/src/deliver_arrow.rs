//! Delivering record batches as one checkpoint: the batches go to the sink as one Arrow IPC
//! stream, then a flush; a refused value names its row in the file, after the rows before
//! it are flushed; on core NATS a dropped connection replays the checkpoint. With `--state`,
//! the checkpoint is recorded in flight first, and each confirmed row by its reader batch.

use anyhow::anyhow;
use nats_sink::arrow_array::RecordBatch;
use nats_sink::{HostError, Sink, SinkError};
use sha2::{Digest as _, Sha256};

use crate::deliver::{refused_part, Deliverer, RowPlaces};
use crate::read_loop::Checkpoint;
use crate::state::{hex_digest, BatchPoint, ConfirmedPoint, InFlight};
use crate::Failure;

/// Rows of one of the reader's record batches: which batch (from 0, as `--state` counts
/// them), the row of it they start at, and the rows.
pub(crate) struct ReadBatch {
    pub(crate) index: u64,
    pub(crate) offset: u64,
    pub(crate) batch: RecordBatch,
}

impl ReadBatch {
    /// Its rows from `row` on, or `None` when it has no more.
    pub(crate) fn rows_from(self, row: usize) -> Option<ReadBatch> {
        let rows = self.batch.num_rows();
        (row < rows).then(|| ReadBatch {
            index: self.index,
            offset: self.offset + row as u64,
            batch: self.batch.slice(row, rows - row),
        })
    }

    /// Where its row at `row` is, as a `--state` records the last confirmed row.
    pub(crate) fn point(&self, row: usize) -> Result<BatchPoint, Failure> {
        Ok(BatchPoint {
            index: self.index,
            row: self.offset + row as u64,
            row_digest: row_digest(&self.batch, row)?,
        })
    }
}

/// The SHA-256 of one row as Arrow IPC (its schema and its values).
pub(crate) fn row_digest(batch: &RecordBatch, row: usize) -> Result<String, Failure> {
    let ipc = nats_sink::arrow::ipc_stream(&[batch.slice(row, 1)])
        .map_err(|e| Failure::Delivery(anyhow!("writing a row as Arrow IPC: {e}")))?;
    Ok(hex_digest(&ipc))
}

/// Record batches of the current checkpoint, and where they start in the file.
#[derive(Default)]
pub(crate) struct ArrowBatch {
    pieces: Vec<ReadBatch>,
    rows: usize,
    bytes: usize,
    /// Rows of the file before this checkpoint's first row.
    first_row: u64,
}

/// Record batches: a checkpoint holds `--batch-size` rows however the file's batches are cut.
impl Checkpoint for ArrowBatch {
    type Read = ReadBatch;
    const UNIT: &'static str = "row";

    fn rows(&self) -> usize {
        self.rows
    }

    fn bytes(&self) -> usize {
        self.bytes
    }

    /// Add `read`'s rows up to `limit` rows in all; the rows past it are handed back for the
    /// next checkpoint, so every full checkpoint holds `limit` rows, as with JSON Lines.
    fn push(&mut self, read: ReadBatch, limit: usize) -> Option<ReadBatch> {
        let room = limit.saturating_sub(self.rows).max(1);
        let (taken, rest) = match read.batch.num_rows() > room {
            true => {
                let taken = ReadBatch {
                    batch: read.batch.slice(0, room),
                    ..read
                };
                (taken, read.rows_from(room))
            }
            false => (read, None),
        };
        self.rows += taken.batch.num_rows();
        // Roughly what the batch holds in memory.
        self.bytes += taken.batch.get_array_memory_size();
        self.pieces.push(taken);
        rest
    }

    fn last_read_after(read: &ReadBatch, before: u64) -> u64 {
        before + read.batch.num_rows() as u64
    }

    async fn deliver(&mut self, deliverer: &mut Deliverer) -> Result<(), Failure> {
        deliverer.deliver_arrow(self).await
    }
}

impl ArrowBatch {
    /// An empty checkpoint after the file's first `rows_before` rows.
    pub(crate) fn after(rows_before: u64) -> ArrowBatch {
        ArrowBatch {
            first_row: rows_before,
            ..ArrowBatch::default()
        }
    }

    /// The file's row number (from 1) of the checkpoint's row at `index`.
    pub(crate) fn row_number(&self, index: u64) -> u64 {
        self.first_row + index + 1
    }

    /// The piece holding the checkpoint's row at `index`, and the row's place in it.
    fn piece_of(&self, index: usize) -> Option<(&ReadBatch, usize)> {
        let mut before = 0;
        for piece in &self.pieces {
            let rows = piece.batch.num_rows();
            if index < before + rows {
                return Some((piece, index - before));
            }
            before += rows;
        }
        None
    }

    /// The confirmed point once the first `accepted` rows are confirmed, after `before`;
    /// with `--state` (`placed`), where the last of them is in the reader's batches.
    pub(crate) fn confirmed_through(
        &self,
        before: &ConfirmedPoint,
        checkpoint: u64,
        accepted: usize,
        placed: bool,
    ) -> Result<ConfirmedPoint, Failure> {
        let batch = match placed {
            true => {
                let (piece, row) = self.piece_of(accepted - 1).ok_or_else(|| {
                    Failure::Delivery(anyhow!(
                        "{accepted} rows confirmed of a checkpoint of {}",
                        self.rows
                    ))
                })?;
                Some(piece.point(row)?)
            }
            false => None,
        };
        Ok(ConfirmedPoint {
            line: self.row_number(accepted as u64 - 1),
            rows: before.rows + accepted as u64,
            checkpoint: Some(checkpoint),
            batch,
            ..ConfirmedPoint::default()
        })
    }

    /// The checkpoint as one Arrow IPC stream, and its id.
    pub(crate) fn ipc_and_checkpoint(&self) -> Result<(Vec<u8>, u64), Failure> {
        let batches: Vec<RecordBatch> = self.pieces.iter().map(|p| p.batch.clone()).collect();
        let ipc = nats_sink::arrow::ipc_stream(&batches)
            .map_err(|e| Failure::Delivery(anyhow!("writing the rows as Arrow IPC: {e}")))?;
        let checkpoint = checkpoint_of(self.first_row, &ipc);
        Ok((ipc, checkpoint))
    }

    /// Its pieces, from its row `held` on: what is left to send of it.
    pub(crate) fn into_rest(self, held: usize) -> Vec<ReadBatch> {
        let mut before = 0;
        let mut rest = Vec::new();
        for piece in self.pieces {
            let rows = piece.batch.num_rows();
            if let Some(piece) = piece.rows_from(held.saturating_sub(before)) {
                rest.push(piece);
            }
            before += rows;
        }
        rest
    }

    /// Start the next checkpoint, just past the rows this one held.
    fn clear(&mut self) {
        self.first_row += self.rows as u64;
        self.pieces.clear();
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
        let (ipc, checkpoint) = batch.ipc_and_checkpoint()?;
        self.record_in_flight(InFlight {
            checkpoint,
            first_line: batch.row_number(0),
            start_offset: 0,
            rows: batch.rows as u64,
        })?;
        let rows = format!(
            "rows {}–{}",
            batch.row_number(0),
            batch.row_number(batch.rows as u64 - 1)
        );
        let sent = self
            .send_replaying(checkpoint, &rows, async |sink| {
                send(sink, checkpoint, batch, &ipc).await
            })
            .await;
        let outcome = match sent {
            Ok((accepted, refusal)) => {
                if accepted > 0 {
                    let placed = self.state.is_some();
                    let confirmed =
                        batch.confirmed_through(&self.confirmed, checkpoint, accepted, placed)?;
                    self.confirm(confirmed)?;
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
