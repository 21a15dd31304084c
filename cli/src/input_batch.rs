//! A batch of input rows on its way to the sink: the rows, where each came from in the input,
//! and the digest that names its checkpoint.

use nats_sink::Rows;

use crate::reader;
use sha2::{Digest as _, Sha256};

/// Rows of the current batch, the input line each came from (its number, where it starts
/// and ends, its text), and a digest of those lines.
pub(crate) struct InputBatch {
    pub(crate) rows: Rows,
    pub(crate) lines: Vec<u64>,
    pub(crate) spans: Vec<(u64, u64)>,
    pub(crate) texts: Vec<String>,
    pub(crate) digest: Sha256,
}

impl InputBatch {
    pub(crate) fn new(capacity: usize) -> InputBatch {
        InputBatch {
            rows: Rows::new(),
            lines: Vec::with_capacity(capacity),
            spans: Vec::with_capacity(capacity),
            texts: Vec::with_capacity(capacity),
            digest: Sha256::new(),
        }
    }

    pub(crate) fn push(&mut self, row: reader::ReadRow) {
        self.push_text(row.line, &row.text);
        self.rows.push(&row.datums);
        self.spans.push((row.start, row.end));
        self.texts.push(row.text);
    }

    /// Add a line to the batch's lines and to the checkpoint's digest.
    pub(crate) fn push_text(&mut self, line_number: u64, line: &str) {
        if self.lines.is_empty() {
            self.digest.update(line_number.to_be_bytes());
        }
        self.digest.update(line.as_bytes());
        self.digest.update(b"\n");
        self.lines.push(line_number);
    }

    /// The batch's checkpoint id: the same lines at the same place give the same id, so a
    /// rerun of the same input replays (and a stream drops what it already holds), while any
    /// other input gets other ids.
    pub(crate) fn take_checkpoint(&mut self) -> u64 {
        let digest = std::mem::take(&mut self.digest).finalize();
        let mut id = [0u8; 8];
        id.copy_from_slice(&digest[..8]);
        u64::from_be_bytes(id)
    }

    /// Roughly what the batch takes in the guest: its values and its strings.
    pub(crate) fn bytes(&self) -> usize {
        self.rows.values.len() * std::mem::size_of::<nats_sink::Value>() + self.rows.data.len()
    }

    pub(crate) fn clear(&mut self) {
        self.rows.clear();
        self.lines.clear();
        self.spans.clear();
        self.texts.clear();
        self.digest = Sha256::new();
    }
}
