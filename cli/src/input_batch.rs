//! A batch of input rows on its way to the sink: the rows, where each came from in the input,
//! and the digest that names its checkpoint.

use nats_sink::Rows;

use crate::reader;
use sha2::{Digest as _, Sha256};

/// Rows of the current batch, the input line each came from (its number, where it starts
/// and ends, its text: a line's every row), and a digest of those lines. A Debezium update
/// is two rows of one line.
pub(crate) struct InputBatch {
    pub(crate) rows: Rows,
    /// Lines the rows came from; the batch's size and its record in flight count these.
    pub(crate) line_count: usize,
    pub(crate) lines: Vec<u64>,
    pub(crate) spans: Vec<(u64, u64)>,
    pub(crate) texts: Vec<String>,
    pub(crate) digest: Sha256,
}

impl InputBatch {
    pub(crate) fn new(capacity: usize) -> InputBatch {
        InputBatch {
            rows: Rows::new(),
            line_count: 0,
            lines: Vec::with_capacity(capacity),
            spans: Vec::with_capacity(capacity),
            texts: Vec::with_capacity(capacity),
            digest: Sha256::new(),
        }
    }

    pub(crate) fn push(&mut self, row: reader::ReadRow) {
        self.digest_line(row.line, &row.text);
        let span = (row.start, row.end);
        match row.rows {
            reader::LineRows::Insert(datums) => {
                self.rows.push(&datums);
                self.place_row(row.line, span, row.text);
            }
            reader::LineRows::Changes(changes) => {
                let last = changes.len().saturating_sub(1);
                let mut text = Some(row.text);
                for (i, (op, datums)) in changes.into_iter().enumerate() {
                    self.rows.push_with_op(op, &datums);
                    let text = match i == last {
                        true => text.take().unwrap_or_default(),
                        false => text.clone().unwrap_or_default(),
                    };
                    self.place_row(row.line, span, text);
                }
            }
        }
    }

    /// Where the row just pushed came from.
    fn place_row(&mut self, line: u64, span: (u64, u64), text: String) {
        self.lines.push(line);
        self.spans.push(span);
        self.texts.push(text);
    }

    /// Add a line to the checkpoint's digest.
    pub(crate) fn digest_line(&mut self, line_number: u64, line: &str) {
        if self.line_count == 0 {
            self.digest.update(line_number.to_be_bytes());
        }
        self.digest.update(line.as_bytes());
        self.digest.update(b"\n");
        self.line_count += 1;
    }

    /// Of the first `rows` rows, those that make whole lines: a line's rows are confirmed
    /// together or not at all.
    pub(crate) fn whole_line_rows(&self, rows: usize) -> usize {
        let mut whole = rows.min(self.lines.len());
        while whole > 0 && whole < self.lines.len() && self.lines[whole] == self.lines[whole - 1] {
            whole -= 1;
        }
        whole
    }

    /// The lines the first `rows` rows came from.
    pub(crate) fn lines_of(&self, rows: usize) -> u64 {
        let rows = &self.lines[..rows.min(self.lines.len())];
        rows.iter()
            .zip(std::iter::once(None).chain(rows.iter().map(Some)))
            .filter(|(line, previous)| Some(*line) != *previous)
            .count() as u64
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
        self.line_count = 0;
        self.lines.clear();
        self.spans.clear();
        self.texts.clear();
        self.digest = Sha256::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows 0–1 from line 3, 2–3 from line 5 (an update pair each), 4 from line 6.
    fn batch() -> InputBatch {
        let mut batch = InputBatch::new(4);
        for line in [3, 3, 5, 5, 6] {
            batch.place_row(line, (0, 0), String::new());
        }
        batch
    }

    /// An update is two rows of one line: confirmed whole or not at all, counted once.
    #[test]
    fn a_lines_rows_are_confirmed_together_and_counted_as_one_line() {
        let batch = batch();
        let whole: Vec<usize> = (0..=5).map(|rows| batch.whole_line_rows(rows)).collect();
        assert_eq!(whole, [0, 0, 2, 2, 4, 5]);
        let lines: Vec<u64> = (0..=5).map(|rows| batch.lines_of(rows)).collect();
        assert_eq!(lines, [0, 1, 1, 2, 2, 3]);
    }
}
