//! The reader task: reads input lines and parses them against the schema on a task of its
//! own, handing parsed rows to the run loop over a channel bounded by rows and by bytes. The
//! run loop can then wait on the channel and a timer at once (`BoundedLines` is not
//! cancel-safe), and parsing runs beside encoding and publishing.

use std::sync::Arc;

use nats_sink::Datum;
use nats_sink_cli::input::parse_line;
use nats_sink_cli::lines::BoundedLines;
use nats_sink_rules::schema::Schema;
use tokio::io::AsyncRead;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

/// Bytes of input lines in the channel at once, whatever the batch size.
const MAX_BYTES_IN_FLIGHT: usize = 16 << 20;
/// Rows in the channel at once, at most: about two batches, within this.
const MAX_ROWS_IN_FLIGHT: usize = 1 << 16;

/// One parsed row and where it came from.
pub struct ReadRow {
    /// Its line number, from 1.
    pub line: u64,
    /// The byte offset where its line starts, and just past its line break.
    pub start: u64,
    pub end: u64,
    /// The line's text (without its line break), for the checkpoint's digest.
    pub text: String,
    pub datums: Vec<Datum>,
    /// Its share of the byte bound, given back when the row leaves the run loop's hands.
    _bytes: OwnedSemaphorePermit,
}

/// What the reader hands over: rows, then the end or why a line could not be read or parsed.
pub type Read = crate::read_loop::Read<ReadRow>;

/// Where the reader starts: line 0 at byte 0 for a fresh run, later for a resumed one.
#[derive(Debug, Clone, Copy, Default)]
pub struct Start {
    pub line: u64,
    pub offset: u64,
}

/// Start reading `input` on a task; rows come out of the receiver in input order. Closing the
/// receiver stops the reader at its next row.
pub fn spawn(
    input: Box<dyn AsyncRead + Unpin + Send>,
    schema: Arc<Schema>,
    start: Start,
    line_bytes: usize,
    batch_rows: usize,
) -> mpsc::Receiver<Read> {
    let capacity = batch_rows.saturating_mul(2).clamp(1, MAX_ROWS_IN_FLIGHT);
    let (rows, receiver) = mpsc::channel(capacity);
    let bytes = Arc::new(Semaphore::new(MAX_BYTES_IN_FLIGHT));
    let lines = BoundedLines::new(
        tokio::io::BufReader::with_capacity(1 << 20, input),
        line_bytes,
    )
    .resumed(start.line, start.offset);
    tokio::spawn(read_all(lines, schema, rows, bytes));
    receiver
}

async fn read_all<R: tokio::io::AsyncBufRead + Unpin>(
    mut lines: BoundedLines<R>,
    schema: Arc<Schema>,
    rows: mpsc::Sender<Read>,
    bytes: Arc<Semaphore>,
) {
    loop {
        let start = lines.offset();
        let text = match lines.next_line().await {
            Ok(Some(text)) => text,
            Ok(None) => {
                let _ = rows.send(Read::End).await;
                return;
            }
            Err(e) => {
                let _ = rows.send(Read::Failed(e.into())).await;
                return;
            }
        };
        let line = lines.line_number();
        if text.trim().is_empty() {
            continue;
        }
        let datums = match parse_line(&schema, line, &text) {
            Ok(datums) => datums,
            Err(e) => {
                let _ = rows.send(Read::Failed(e.into())).await;
                return;
            }
        };
        // A line longer than the whole bound takes all of it, so it travels alone.
        let weight = text.len().clamp(1, MAX_BYTES_IN_FLIGHT) as u32;
        let Ok(permit) = bytes.clone().acquire_many_owned(weight).await else {
            return;
        };
        let row = ReadRow {
            line,
            start,
            end: lines.offset(),
            text,
            datums,
            _bytes: permit,
        };
        if rows.send(Read::Rows(row)).await.is_err() {
            // The run loop stopped reading (a signal, or delivery failed).
            return;
        }
    }
}
