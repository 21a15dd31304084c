//! The reader task: reads input lines and parses them against the schema on a task of its
//! own, handing parsed rows to the run loop over a channel bounded by rows and by bytes. The
//! run loop can then wait on the channel and a timer at once (`BoundedLines` is not
//! cancel-safe), and parsing runs beside encoding and publishing.

use std::sync::Arc;

use nats_sink::{Datum, Op};
use nats_sink_cli::input::debezium::{self, Change, ChangeSchema};
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
    pub rows: LineRows,
    /// Its share of the byte bound, given back when the row leaves the run loop's hands.
    _bytes: OwnedSemaphorePermit,
}

/// The rows one line makes.
pub enum LineRows {
    /// A JSON Lines row: an insert.
    Insert(Vec<Datum>),
    /// A change event's rows with their operations (an update is a pair).
    Changes(Vec<(Op, Vec<Datum>)>),
}

/// How lines become rows: `--input-format jsonl` or `debezium`.
#[derive(Clone)]
pub enum LineParser {
    JsonLines(Arc<Schema>),
    Debezium(Arc<ChangeSchema>),
}

impl LineParser {
    /// The rows of line `line`, or `None` for a Debezium tombstone.
    fn parse(&self, line: u64, text: &str) -> anyhow::Result<Option<LineRows>> {
        Ok(match self {
            LineParser::JsonLines(schema) => {
                Some(LineRows::Insert(parse_line(schema, line, text)?))
            }
            LineParser::Debezium(table) => match debezium::parse_change(table, line, text)? {
                Change::Rows(rows) => Some(LineRows::Changes(rows)),
                Change::Tombstone => None,
            },
        })
    }

    /// True for a line that makes no rows and is read past: a blank line, or a tombstone.
    pub fn skips(&self, text: &str) -> bool {
        text.trim().is_empty()
            || matches!(self, LineParser::Debezium(_) if debezium::is_tombstone(text))
    }
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
    parser: LineParser,
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
    tokio::spawn(read_all(lines, parser, rows, bytes));
    receiver
}

async fn read_all<R: tokio::io::AsyncBufRead + Unpin>(
    mut lines: BoundedLines<R>,
    parser: LineParser,
    rows: mpsc::Sender<Read>,
    bytes: Arc<Semaphore>,
) {
    // Debezium tombstones read past, for the run's summary.
    let mut tombstones = 0u64;
    loop {
        let start = lines.offset();
        let text = match lines.next_line().await {
            Ok(Some(text)) => text,
            Ok(None) => {
                if tombstones > 0 {
                    note!("nats-sink: {tombstones} Debezium tombstone(s) skipped: Kafka's markers for log compaction after a delete, which change nothing");
                }
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
        let parsed = match parser.parse(line, &text) {
            Ok(Some(parsed)) => parsed,
            Ok(None) => {
                tombstones += 1;
                continue;
            }
            Err(e) => {
                let _ = rows.send(Read::Failed(e)).await;
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
            rows: parsed,
            _bytes: permit,
        };
        if rows.send(Read::Rows(row)).await.is_err() {
            // The run loop stopped reading (a signal, or delivery failed).
            return;
        }
    }
}
