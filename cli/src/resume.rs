//! Where a run with an existing `--state` starts: after the confirmed line (or row), and with
//! the batch that was in flight at the crash either skipped as far as the stream proves it
//! stored, or replayed whole under its checkpoint id. That decision (`resume`) serves every
//! input through `InFlightRows`; JSON Lines reads its lines in flight again here, record
//! batches in `resume_batches`. An upsert sink (a KV bucket holds a checkpoint key by key,
//! not as a prefix) and Debezium input (a line makes no message, one or two) instead replay
//! the batch whole, leaving out what the stream holds of it (`replay_leaving_out_stored`).

use std::path::Path;

use anyhow::anyhow;
use nats_sink::resume::{stored_in_bucket, stored_prefix, Stored, StoredPrefix};
use nats_sink::wit::TransportError;
use nats_sink::{Reach, Target};
use nats_sink_cli::lines::BoundedLines;
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncSeekExt as _;

use super::reader::{LineParser, Start};
use super::state::{line_digest, ConfirmedPoint, InFlight, StateFile};
use crate::Failure;

/// How a JSON Lines run begins.
pub struct Plan {
    pub start: Start,
    pub confirmed: ConfirmedPoint,
    /// The first batch's size, when it replays the batch in flight: the same rows give the
    /// same checkpoint id, so a stream drops what it already holds within its window.
    pub first_batch_rows: Option<usize>,
    /// What the stream holds of the batch in flight, which its replay leaves out (an upsert
    /// sink, or Debezium input: see `replay_leaving_out_stored`).
    pub stored: Option<Stored>,
}

impl Plan {
    /// A run without `--state`: from the start.
    pub fn fresh() -> Plan {
        Plan {
            start: Start::default(),
            confirmed: ConfirmedPoint::default(),
            first_batch_rows: None,
            stored: None,
        }
    }
}

/// The batch in flight at the crash, read again from the input (and checked to be the one
/// sent): what the resume needs to know of it, whatever the input's form.
pub trait InFlightRows {
    /// What the input counts in: "line" or "row".
    const UNIT: &'static str;
    fn len(&self) -> usize;
    /// The line or row number of its row at `index`.
    fn place(&self, index: usize) -> u64;
    /// The confirmed point once the stream holds its first `held` rows (at least one), after
    /// `before`.
    fn confirmed_through(
        &self,
        before: &ConfirmedPoint,
        checkpoint: u64,
        held: usize,
    ) -> Result<ConfirmedPoint, Failure>;
}

/// How a resumed run goes on from the batch in flight.
pub struct Resumption {
    pub confirmed: ConfirmedPoint,
    /// Set when the batch in flight is replayed whole: its size.
    pub first_batch_rows: Option<usize>,
    /// Rows of the batch in flight the stream holds: they are skipped, not sent again.
    pub held: usize,
}

/// How to go on after `file`'s confirmed point, given the batch in flight (`in_flight`, read
/// again, when the state names one): ask the stream what it stored of it, and skip that, or
/// replay it whole under its checkpoint id.
pub async fn resume<R: InFlightRows>(
    file: &mut StateFile,
    target: Target,
    reach: &Reach,
    in_flight: Option<&R>,
) -> Result<Resumption, Failure> {
    let confirmed = file.state.confirmed.clone();
    let (Some(rows), Some(record)) = (in_flight, file.state.in_flight.clone()) else {
        return Ok(Resumption {
            confirmed,
            first_batch_rows: None,
            held: 0,
        });
    };
    let whole = Resumption {
        confirmed: confirmed.clone(),
        first_batch_rows: Some(rows.len()),
        held: 0,
    };
    let unit = R::UNIT;
    let (first, last) = (rows.place(0), rows.place(rows.len() - 1));
    let Some(sink_id) = file.state.sink_id.clone() else {
        note!("nats-sink: resuming: {unit}s {first}–{last} were in flight and dedupe is off: they are sent again, and rows of them stored before the stop are stored twice");
        return Ok(whole);
    };
    let stored = stored_prefix(target, reach, &sink_id, record.checkpoint)
        .await
        .map_err(|e| {
            Failure::Delivery(anyhow!(
                "resuming: finding what the stream holds of {unit}s {first}–{last}: {}",
                nats_sink::describe_transport_error(&e)
            ))
        })?;
    let held = match stored {
        StoredPrefix::Rows(0) => {
            note!("nats-sink: resuming: nothing of {unit}s {first}–{last} was stored; sending them under their checkpoint id");
            return Ok(whole);
        }
        StoredPrefix::Unknown(why) => {
            note!("nats-sink: resuming: {unit}s {first}–{last} were in flight and what the stream holds of them is unknown ({why}): they are sent again under their ids (at-least-once; a stream drops them within its duplicate window)");
            return Ok(whole);
        }
        StoredPrefix::Rows(n) => (n as usize).min(rows.len()),
    };
    note!(
        "nats-sink: resuming: the stream holds {held} of the {} rows of {unit}s {first}–{last}, through {unit} {}",
        rows.len(),
        rows.place(held - 1)
    );
    let confirmed = rows.confirmed_through(&confirmed, record.checkpoint, held)?;
    let mut state = file.state.clone();
    state.confirmed = confirmed.clone();
    state.in_flight = None;
    file.write(state).map_err(Failure::Delivery)?;
    Ok(Resumption {
        confirmed,
        first_batch_rows: None,
        held,
    })
}

/// One line of the batch in flight, read again.
struct Line {
    number: u64,
    start: u64,
    end: u64,
    text: String,
}

/// The checkpoint id of rows from these lines, as `InputBatch::take_checkpoint` computes it.
fn checkpoint_of<'a>(first_line: u64, texts: impl Iterator<Item = &'a str>) -> u64 {
    let mut digest = Sha256::new();
    digest.update(first_line.to_be_bytes());
    for text in texts {
        digest.update(text.as_bytes());
        digest.update(b"\n");
    }
    let digest = digest.finalize();
    let mut id = [0u8; 8];
    id.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(id)
}

/// The lines of the batch in flight, read again.
struct Lines(Vec<Line>);

impl InFlightRows for Lines {
    const UNIT: &'static str = "line";

    fn len(&self) -> usize {
        self.0.len()
    }

    fn place(&self, index: usize) -> u64 {
        self.0[index].number
    }

    fn confirmed_through(
        &self,
        before: &ConfirmedPoint,
        checkpoint: u64,
        held: usize,
    ) -> Result<ConfirmedPoint, Failure> {
        let through = &self.0[held - 1];
        Ok(ConfirmedPoint {
            line: through.number,
            offset: through.end,
            rows: before.rows + held as u64,
            checkpoint: Some(checkpoint),
            line_start: through.start,
            line_digest: line_digest(&through.text),
            batch: None,
        })
    }
}

/// The plan for a JSON Lines run with `file`'s state.
pub async fn plan(
    file: &mut StateFile,
    target: Target,
    reach: &Reach,
    line_bytes: usize,
    parser: &LineParser,
) -> Result<Plan, Failure> {
    let confirmed = &file.state.confirmed;
    let start = Start {
        line: confirmed.line,
        offset: confirmed.offset,
    };
    let lines = match &file.state.in_flight {
        None => None,
        Some(in_flight) => Some(Lines(
            reread(&file.state.input, start, in_flight, line_bytes, parser).await?,
        )),
    };
    // A KV bucket's stream holds a checkpoint key by key, not as a prefix; and a Debezium
    // line's messages are not one per line (a delete an append-only sink drops has none, a
    // change of key has two). Either way, the batch is replayed leaving out what is stored.
    let by_key = target.connect.kv.is_some() || matches!(parser, LineParser::Debezium(_));
    if let (true, Some(lines)) = (by_key, &lines) {
        return replay_leaving_out_stored(file, target, reach, lines).await;
    }
    let resumption = resume(file, target, reach, lines.as_ref()).await?;
    Ok(Plan {
        start: Start {
            line: resumption.confirmed.line,
            offset: resumption.confirmed.offset,
        },
        confirmed: resumption.confirmed,
        first_batch_rows: resumption.first_batch_rows,
        stored: None,
    })
}

/// Replay the batch in flight (`lines`, read again) whole under its checkpoint id, leaving
/// out every message its stream holds: per subject, JetStream holds a checkpoint's messages
/// as a prefix of those written (an upsert sink's order per key), so what is sent again is
/// exactly what was not stored, in write order, whatever the duplicate window. Without dedupe
/// (no ids), or when what is stored cannot be told, it is replayed whole under its ids.
async fn replay_leaving_out_stored(
    file: &StateFile,
    target: Target,
    reach: &Reach,
    lines: &Lines,
) -> Result<Plan, Failure> {
    let confirmed = file.state.confirmed.clone();
    let (first, last) = (lines.place(0), lines.place(lines.len() - 1));
    let mut plan = Plan {
        start: Start {
            line: confirmed.line,
            offset: confirmed.offset,
        },
        confirmed,
        first_batch_rows: Some(lines.len()),
        stored: None,
    };
    let (Some(sink_id), Some(in_flight)) = (&file.state.sink_id, &file.state.in_flight) else {
        note!("nats-sink: resuming: lines {first}–{last} were in flight and dedupe is off: they are sent again, and changes of them stored before the stop are applied twice");
        return Ok(plan);
    };
    let checkpoint = in_flight.checkpoint;
    let reading = |e: TransportError| {
        Failure::Delivery(anyhow!(
            "resuming: finding what the stream holds of lines {first}–{last}: {}",
            nats_sink::describe_transport_error(&e)
        ))
    };
    let subject = target.subject.clone();
    let stored = match target.connect.kv.is_some() {
        true => stored_in_bucket(target, reach, sink_id, checkpoint)
            .await
            .map_err(reading)?,
        false => match stored_prefix(target, reach, sink_id, checkpoint)
            .await
            .map_err(reading)?
        {
            StoredPrefix::Rows(held) => {
                let mut stored = Stored::new(sink_id, checkpoint);
                if let Some(last) = held.checked_sub(1) {
                    stored.add(&subject, last);
                }
                Ok(stored)
            }
            StoredPrefix::Unknown(why) => Err(why),
        },
    };
    match stored {
        Ok(stored) => {
            note!("nats-sink: resuming: lines {first}–{last} were in flight; sending them again under their checkpoint id, leaving out what the stream holds of them ({} subject(s))", stored.subjects());
            plan.stored = Some(stored);
        }
        Err(why) => note!("nats-sink: resuming: lines {first}–{last} were in flight and what the stream holds of them is unknown ({why}): they are sent again under their ids (at-least-once; a stream drops them within its duplicate window)"),
    }
    Ok(plan)
}

/// The rows of the batch in flight, read again from the input; refused when they are not the
/// lines the batch was made of.
async fn reread(
    input: &Path,
    start: Start,
    in_flight: &InFlight,
    line_bytes: usize,
    parser: &LineParser,
) -> Result<Vec<Line>, Failure> {
    let changed = |why: String| {
        Failure::Input(anyhow!(
            "--state: the input changed after the confirmed line {} (byte {}): {why}; refusing to resume, as rows could be lost or sent twice",
            start.line,
            start.offset
        ))
    };
    let mut reader = tokio::fs::File::open(input)
        .await
        .map_err(|e| changed(format!("opening it: {e}")))?;
    reader
        .seek(std::io::SeekFrom::Start(start.offset))
        .await
        .map_err(|e| changed(format!("seeking: {e}")))?;
    let mut lines = BoundedLines::new(tokio::io::BufReader::new(reader), line_bytes)
        .resumed(start.line, start.offset);
    let mut read = Vec::new();
    while (read.len() as u64) < in_flight.rows {
        let begin = lines.offset();
        let text = match lines.next_line().await {
            Ok(Some(text)) => text,
            Ok(None) => {
                return Err(changed(format!(
                    "it ends before the {} rows that were in flight",
                    in_flight.rows
                )))
            }
            Err(e) => return Err(changed(e.to_string())),
        };
        if parser.skips(&text) {
            continue;
        }
        read.push(Line {
            number: lines.line_number(),
            start: begin,
            end: lines.offset(),
            text,
        });
    }
    let first = read.first().map(|l| l.number).unwrap_or_default();
    let checkpoint = checkpoint_of(first, read.iter().map(|l| l.text.as_str()));
    if read.is_empty() || first != in_flight.first_line || checkpoint != in_flight.checkpoint {
        return Err(changed(format!(
            "the {} rows in flight from line {} are not the ones sent",
            in_flight.rows, in_flight.first_line
        )));
    }
    Ok(read)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A replayed batch must get the id the crashed run gave it.
    #[test]
    fn checkpoint_ids_match_the_run_loops() {
        let mut batch = crate::input_batch::InputBatch::new(4);
        for (line, text) in [(3u64, "{\"a\":1}"), (5, "{\"a\":2}")] {
            batch.digest_line(line, text);
        }
        assert_eq!(
            batch.take_checkpoint(),
            checkpoint_of(3, ["{\"a\":1}", "{\"a\":2}"].into_iter())
        );
    }
}
