//! `--state` over record batches (Parquet, Arrow IPC files): the reader's batches, numbered as
//! the state counts them; a resumed run reads them through the last confirmed row (checked to
//! be the row confirmed) and reads the batch in flight at the crash again (checked to be the
//! one sent), for `resume::resume` to skip what the stream holds of it or replay it whole.

use std::collections::VecDeque;

use anyhow::anyhow;
use nats_sink_cli::input::columnar::{BatchReader, ColumnarError};

use crate::deliver_arrow::{row_digest, ArrowBatch, ReadBatch};
use crate::read_loop::Checkpoint as _;
use crate::resume::InFlightRows;
use crate::state::{ConfirmedPoint, InFlight, RunState};
use crate::Failure;

/// A reader's batches, numbered from 0 (empty ones too, so the numbers do not depend on what
/// is skipped); batches put back are handed out first.
pub(crate) struct NumberedBatches {
    reader: Box<dyn BatchReader>,
    next_index: u64,
    ahead: VecDeque<ReadBatch>,
}

impl NumberedBatches {
    pub(crate) fn new(reader: Box<dyn BatchReader>) -> NumberedBatches {
        NumberedBatches {
            reader,
            next_index: 0,
            ahead: VecDeque::new(),
        }
    }

    /// The next rows: a batch put back, or the reader's next batch that has rows.
    pub(crate) fn next(&mut self) -> Result<Option<ReadBatch>, ColumnarError> {
        if let Some(read) = self.ahead.pop_front() {
            return Ok(Some(read));
        }
        loop {
            let Some(batch) = self.reader.next_batch()? else {
                return Ok(None);
            };
            let index = self.next_index;
            self.next_index += 1;
            if batch.num_rows() > 0 {
                return Ok(Some(ReadBatch {
                    index,
                    offset: 0,
                    batch,
                }));
            }
        }
    }

    /// Hand `reads` out next, in their order, before anything else.
    fn put_back(&mut self, reads: Vec<ReadBatch>) {
        for read in reads.into_iter().rev() {
            self.ahead.push_front(read);
        }
    }
}

/// The batch in flight at the crash, read again: a checkpoint of the same rows, cut the same.
pub(crate) struct InFlightBatches(ArrowBatch);

impl InFlightRows for InFlightBatches {
    const UNIT: &'static str = "row";

    fn len(&self) -> usize {
        self.0.rows()
    }

    fn place(&self, index: usize) -> u64 {
        self.0.row_number(index as u64)
    }

    fn confirmed_through(
        &self,
        before: &ConfirmedPoint,
        checkpoint: u64,
        held: usize,
    ) -> Result<ConfirmedPoint, Failure> {
        self.0.confirmed_through(before, checkpoint, held, true)
    }
}

impl InFlightBatches {
    /// Hand its rows from `held` on to `batches` again, for the run to send.
    pub(crate) fn put_back(self, held: usize, batches: &mut NumberedBatches) {
        batches.put_back(self.0.into_rest(held));
    }
}

/// Read `batches` through the state's confirmed row, and the batch in flight after it if the
/// state names one. Refused (bad input) when the input is not the one the state confirmed.
pub(crate) fn position(
    batches: &mut NumberedBatches,
    state: &RunState,
) -> Result<Option<InFlightBatches>, Failure> {
    let confirmed = &state.confirmed;
    let changed = |why: String| {
        Failure::Input(anyhow!(
            "--state: the input {} changed since it was confirmed through row {}: {why}; refusing to resume, as rows could be lost or sent twice",
            state.input.display(),
            confirmed.line
        ))
    };
    skip_confirmed(batches, confirmed).map_err(changed)?;
    match &state.in_flight {
        None => Ok(None),
        Some(in_flight) => reread(batches, confirmed, in_flight)
            .map(|batch| Some(InFlightBatches(batch)))
            .map_err(changed),
    }
}

/// Read through the last confirmed row, checking it is where and what the state says.
fn skip_confirmed(batches: &mut NumberedBatches, confirmed: &ConfirmedPoint) -> Result<(), String> {
    if confirmed.line == 0 {
        return Ok(());
    }
    let Some(at) = &confirmed.batch else {
        return Err("the state records no place in its record batches".into());
    };
    let mut rows_before = 0u64;
    loop {
        let read = batches
            .next()
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("it ends before row {}", confirmed.line))?;
        let rows = read.batch.num_rows() as u64;
        if read.index < at.index {
            rows_before += rows;
            continue;
        }
        if read.index > at.index || at.row >= rows || rows_before + at.row + 1 != confirmed.line {
            return Err(format!(
                "its record batches hold other rows now (row {} is not row {} of batch {})",
                confirmed.line, at.row, at.index
            ));
        }
        let row = at.row as usize;
        let digest = row_digest(&read.batch, row).map_err(|_| "its rows cannot be read")?;
        if digest != at.row_digest {
            return Err(format!("row {} has other values now", confirmed.line));
        }
        batches.put_back(read.rows_from(row + 1).into_iter().collect());
        return Ok(());
    }
}

/// The batch in flight, read again and checked to be the one sent: the same rows, cut as the
/// run that sent it cut them, give its checkpoint id.
fn reread(
    batches: &mut NumberedBatches,
    confirmed: &ConfirmedPoint,
    in_flight: &InFlight,
) -> Result<ArrowBatch, String> {
    if in_flight.rows == 0 {
        return Err("the state names an empty batch in flight".into());
    }
    let mut batch = ArrowBatch::after(confirmed.line);
    let rows = in_flight.rows as usize;
    while batch.rows() < rows {
        let read = batches.next().map_err(|e| e.to_string())?.ok_or_else(|| {
            format!(
                "it ends before the {} rows that were in flight",
                in_flight.rows
            )
        })?;
        if let Some(rest) = batch.push(read, rows) {
            batches.put_back(vec![rest]);
        }
    }
    let (_, checkpoint) = batch
        .ipc_and_checkpoint()
        .map_err(|_| "its rows cannot be read")?;
    if in_flight.first_line != confirmed.line + 1 || checkpoint != in_flight.checkpoint {
        return Err(format!(
            "the {} rows in flight from row {} are not the ones sent",
            in_flight.rows, in_flight.first_line
        ));
    }
    Ok(batch)
}
