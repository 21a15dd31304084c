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
        Some(in_flight) => reread(batches, confirmed, in_flight, state.batch_size)
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
    batch_size: u32,
) -> Result<ArrowBatch, String> {
    // Held in memory while it is checked: a damaged state must not make it the whole file.
    // Every run of a record batch state has the same batch size, so no checkpoint is larger.
    if in_flight.rows == 0 || in_flight.rows > batch_size.into() {
        return Err(format!(
            "the state names {} rows in flight, in checkpoints of at most {batch_size}",
            in_flight.rows
        ));
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
    use arrow_schema::{DataType, Field, Schema};
    use nats_sink_cli::input::columnar::{self, InputFormat};

    use super::*;
    use crate::state::RunState;

    const BATCH_ROWS: usize = 1000;

    /// An IPC file of 4,000 numbered rows in batches of 700: the reader cuts them at 1,000,
    /// and checkpoints of 1,000 join the cuts, carrying rows across.
    fn ipc_file(dir: &std::path::Path) -> std::path::PathBuf {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, false),
        ]));
        let path = dir.join("rows.arrow");
        let file = std::fs::File::create(&path).unwrap();
        let mut writer = arrow_ipc::writer::FileWriter::try_new(file, &schema).unwrap();
        for start in (0..4000).step_by(700) {
            let ids: Vec<i64> = (start..(start + 700).min(4000)).collect();
            let names: Vec<String> = ids.iter().map(|i| format!("row-{i}")).collect();
            let columns: Vec<ArrayRef> = vec![
                Arc::new(Int64Array::from(ids)),
                Arc::new(StringArray::from(names)),
            ];
            writer
                .write(&RecordBatch::try_new(schema.clone(), columns).unwrap())
                .unwrap();
        }
        writer.finish().unwrap();
        path
    }

    fn batches(path: &std::path::Path) -> NumberedBatches {
        let path = path.to_str().unwrap();
        NumberedBatches::new(columnar::open(InputFormat::ArrowFile, path, BATCH_ROWS).unwrap())
    }

    /// The first `count` checkpoints, filled as the read loop fills them (full ones, each
    /// starting with the rows carried past the one before).
    fn checkpoints(
        batches: &mut NumberedBatches,
        mut rows_before: u64,
        count: usize,
    ) -> Vec<ArrowBatch> {
        let (mut filled, mut carry) = (Vec::new(), None);
        for _ in 0..count {
            let mut batch = ArrowBatch::after(rows_before);
            if let Some(rest) = carry.take() {
                carry = batch.push(rest, BATCH_ROWS);
            }
            while batch.rows() < BATCH_ROWS {
                let read = batches.next().unwrap().unwrap();
                carry = batch.push(read, BATCH_ROWS);
            }
            rows_before += batch.rows() as u64;
            filled.push(batch);
        }
        filled
    }

    /// `result`'s value; a failure fails the test, saying why (`Failure` has no `Debug`).
    fn done<T>(result: Result<T, Failure>) -> T {
        match result {
            Ok(value) => value,
            Err(Failure::Input(e) | Failure::Delivery(e)) => panic!("{e:#}"),
            Err(_) => panic!("failed"),
        }
    }

    /// A run that confirmed two checkpoints and crashed with the third in flight: a resumed
    /// run reads that third one again with the id the crashed run gave it (so a stream drops
    /// the replay within its window), or goes on just past the rows the stream holds of it.
    #[test]
    fn a_resumed_run_replays_the_batch_in_flight_under_its_id() {
        let dir = tempfile::tempdir().unwrap();
        let path = ipc_file(dir.path());
        let sent = checkpoints(&mut batches(&path), 0, 3);
        let mut confirmed = ConfirmedPoint::default();
        for batch in &sent[..2] {
            let (_, id) = done(batch.ipc_and_checkpoint());
            confirmed = done(batch.confirmed_through(&confirmed, id, batch.rows(), true));
        }
        // Row 2,000 is row 600 of the reader's third batch (rows 1,401–2,100).
        assert_eq!(
            confirmed.batch.as_ref().map(|b| (b.index, b.row)),
            Some((2, 599))
        );
        let (_, in_flight_id) = done(sent[2].ipc_and_checkpoint());
        let mut state = RunState::fresh(path.clone(), Some("s".into()), "rows".into(), 1000, true);
        state.confirmed = confirmed.clone();
        state.in_flight = Some(InFlight {
            checkpoint: in_flight_id,
            first_line: 2001,
            start_offset: 0,
            rows: 1000,
        });

        // Replayed whole: what the run sends first is the checkpoint sent before the crash.
        let mut resumed = batches(&path);
        let read_again = done(position(&mut resumed, &state)).unwrap();
        assert_eq!((read_again.len(), read_again.place(0)), (1000, 2001));
        read_again.put_back(0, &mut resumed);
        let replay = checkpoints(&mut resumed, 2000, 1).pop().unwrap();
        assert_eq!(done(replay.ipc_and_checkpoint()).1, in_flight_id);

        // The stream holds 300 of its rows: the run goes on from row 2,301 (id 2,300).
        let mut resumed = batches(&path);
        let read_again = done(position(&mut resumed, &state)).unwrap();
        let through = done(read_again.confirmed_through(&confirmed, in_flight_id, 300));
        assert_eq!((through.line, through.rows), (2300, 2300));
        read_again.put_back(300, &mut resumed);
        let next = resumed.next().unwrap().unwrap();
        let ids = next
            .batch
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        assert_eq!(ids.value(0), 2300);

        // More rows in flight than a checkpoint holds: a damaged state, not read into memory.
        let mut damaged = state.clone();
        damaged.in_flight.as_mut().unwrap().rows = 1 << 40;
        let err = position(&mut batches(&path), &damaged).err().unwrap();
        assert!(
            matches!(&err, Failure::Input(e) if e.to_string().contains("in checkpoints of at most 1000"))
        );

        // Another id in flight: not the batch that was sent, so the input changed.
        state.in_flight.as_mut().unwrap().checkpoint ^= 1;
        let err = position(&mut batches(&path), &state).err().unwrap();
        assert!(matches!(&err, Failure::Input(e) if e.to_string().contains("not the ones sent")));
    }
}
