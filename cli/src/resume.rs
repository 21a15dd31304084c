//! Where a run with an existing `--state` starts: after the confirmed line, and with the
//! batch that was in flight at the crash either skipped as far as the stream proves it
//! stored, or replayed whole under its checkpoint id.

use std::path::Path;

use anyhow::anyhow;
use nats_sink::resume::StoredPrefix;
use nats_sink::{Reach, Target};
use nats_sink_cli::lines::BoundedLines;
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncSeekExt as _;

use super::reader::Start;
use super::state::{line_digest, ConfirmedPoint, InFlight, StateFile};
use crate::Failure;

/// How the run begins.
pub struct Plan {
    pub start: Start,
    pub confirmed: ConfirmedPoint,
    /// The first batch's size, when it replays the batch in flight: the same rows give the
    /// same checkpoint id, so a stream drops what it already holds within its window.
    pub first_batch_rows: Option<usize>,
}

impl Plan {
    /// A run without `--state`: from the start.
    pub fn fresh() -> Plan {
        Plan {
            start: Start::default(),
            confirmed: ConfirmedPoint::default(),
            first_batch_rows: None,
        }
    }
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

/// The plan for a run with `file`'s state. `sink_id` is `None` with dedupe off.
pub async fn plan(
    file: &mut StateFile,
    target: Target,
    reach: &Reach,
    line_bytes: usize,
) -> Result<Plan, Failure> {
    let confirmed = file.state.confirmed.clone();
    let start = Start {
        line: confirmed.line,
        offset: confirmed.offset,
    };
    let Some(in_flight) = file.state.in_flight.clone() else {
        return Ok(Plan {
            start,
            confirmed,
            first_batch_rows: None,
        });
    };
    let lines = reread(&file.state.input, start, &in_flight, line_bytes).await?;
    let whole = Plan {
        start,
        confirmed: confirmed.clone(),
        first_batch_rows: Some(lines.len()),
    };
    let (first, last) = (lines[0].number, lines[lines.len() - 1].number);
    let Some(sink_id) = file.state.sink_id.clone() else {
        note!("nats-sink: resuming: lines {first}–{last} were in flight and dedupe is off: they are sent again, and rows of them stored before the stop are stored twice");
        return Ok(whole);
    };
    let stored = nats_sink::resume::stored_prefix(target, reach, &sink_id, in_flight.checkpoint)
        .await
        .map_err(|e| {
            Failure::Delivery(anyhow!(
                "resuming: finding what the stream holds of lines {first}–{last}: {}",
                nats_sink::describe_transport_error(&e)
            ))
        })?;
    let held = match stored {
        StoredPrefix::Rows(0) => {
            note!("nats-sink: resuming: nothing of lines {first}–{last} was stored; sending them under their checkpoint id");
            return Ok(whole);
        }
        StoredPrefix::Unknown(why) => {
            note!("nats-sink: resuming: lines {first}–{last} were in flight and what the stream holds of them is unknown ({why}): they are sent again under their ids (at-least-once; a stream drops them within its duplicate window)");
            return Ok(whole);
        }
        StoredPrefix::Rows(n) => (n as usize).min(lines.len()),
    };
    let through = &lines[held - 1];
    note!(
        "nats-sink: resuming: the stream holds {held} of the {} rows of lines {first}–{last}, through line {}",
        lines.len(),
        through.number
    );
    let confirmed = ConfirmedPoint {
        line: through.number,
        offset: through.end,
        rows: confirmed.rows + held as u64,
        checkpoint: Some(in_flight.checkpoint),
        line_start: through.start,
        line_digest: line_digest(&through.text),
    };
    let mut state = file.state.clone();
    state.confirmed = confirmed.clone();
    state.in_flight = None;
    file.write(state).map_err(Failure::Delivery)?;
    Ok(Plan {
        start: Start {
            line: through.number,
            offset: through.end,
        },
        confirmed,
        first_batch_rows: None,
    })
}

/// The rows of the batch in flight, read again from the input; refused when they are not the
/// lines the batch was made of.
async fn reread(
    input: &Path,
    start: Start,
    in_flight: &InFlight,
    line_bytes: usize,
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
        if text.trim().is_empty() {
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
            batch.push_text(line, text);
        }
        assert_eq!(
            batch.take_checkpoint(),
            checkpoint_of(3, ["{\"a\":1}", "{\"a\":2}"].into_iter())
        );
    }
}
