//! Rows as `write` receives them: packed into one `rows` record for one crossing of the
//! boundary (see `wit/nats-sink.wit`). Reading checks every end and span, since a host may
//! send anything; building (for native callers and tests) keeps the layout right by
//! construction.

use crate::bindings::{Op, Rows, Span, Value};
use crate::encode::RowError;

/// One row of a packed batch: its values (columns first, then nested children) and the
/// batch's shared bytes, which its spans point into.
#[derive(Clone, Copy)]
pub struct RowRef<'a> {
    pub values: &'a [Value],
    data: &'a [u8],
}

impl<'a> RowRef<'a> {
    /// All of `rows` as one row (its values and bytes), for a row built in place.
    pub fn whole(rows: &'a Rows) -> RowRef<'a> {
        RowRef {
            values: &rows.values,
            data: &rows.data,
        }
    }

    /// The bytes `span` names, or why it names none.
    pub fn bytes(&self, span: Span) -> Result<&'a [u8], String> {
        crate::within(span.start, span.len, self.data.len())
            .map(|range| &self.data[range])
            .ok_or_else(|| {
                format!(
                    "span {}..{} is outside the batch's {} data bytes",
                    span.start,
                    span.start as u64 + span.len as u64,
                    self.data.len()
                )
            })
    }

    /// The text `span` names, or why it is not text.
    pub fn text(&self, span: Span) -> Result<&'a str, String> {
        std::str::from_utf8(self.bytes(span)?).map_err(|e| not_utf8(span, e))
    }
}

/// Why the bytes `span` names are not text.
pub fn not_utf8(span: Span, error: std::str::Utf8Error) -> String {
    format!(
        "span {}..{} is not UTF-8 (at byte {} of it)",
        span.start,
        span.start as u64 + span.len as u64,
        error.valid_up_to()
    )
}

/// A row's layout is wrong; no column is to blame.
fn layout_error(message: String) -> RowError {
    RowError {
        column: String::new(),
        message,
    }
}

/// Row `index`'s operation: what `rows.ops` lists, or an insert when it lists none; an error
/// when it lists a number of operations other than the number of rows.
pub fn op_of(rows: &Rows, index: usize) -> Result<Op, RowError> {
    if rows.ops.is_empty() {
        return Ok(Op::Insert);
    }
    if rows.ops.len() != rows.ends.len() {
        return Err(layout_error(format!(
            "the batch lists {} operations for {} rows",
            rows.ops.len(),
            rows.ends.len()
        )));
    }
    Ok(rows.ops[index])
}

/// Each row of `rows` in order, or, where the layout breaks, why: row `i` is
/// `values[ends[i - 1]..ends[i]]`, and the last row must end where `values` does (a batch of
/// no rows holds no values; if it does, that is one error, at row 0).
pub fn read(rows: &Rows) -> impl Iterator<Item = Result<RowRef<'_>, RowError>> {
    let count = rows.ends.len();
    let stray = (count == 0 && !rows.values.is_empty()).then(|| {
        Err(layout_error(format!(
            "the batch has no rows but {} values",
            rows.values.len()
        )))
    });
    let mut start = 0usize;
    let each = rows.ends.iter().enumerate().map(move |(index, &end)| {
        let end = end as usize;
        if end < start || end > rows.values.len() {
            return Err(layout_error(format!(
                "the row ends at value {end}, outside {start}..={} (the batch has {} values)",
                rows.values.len(),
                rows.values.len()
            )));
        }
        if index + 1 == count && end != rows.values.len() {
            return Err(layout_error(format!(
                "the last row ends at value {end}, but the batch has {} values",
                rows.values.len()
            )));
        }
        let row = RowRef {
            values: &rows.values[start..end],
            data: &rows.data,
        };
        start = end;
        Ok(row)
    });
    stray.into_iter().chain(each)
}

/// Building a batch natively: strings go into `data`, values name them by span.
impl Rows {
    pub fn new() -> Rows {
        Rows {
            values: Vec::new(),
            ends: Vec::new(),
            data: Vec::new(),
            ops: Vec::new(),
        }
    }

    /// Rows in the batch.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Append `bytes` to the batch's data; the span names them.
    pub fn span(&mut self, bytes: &[u8]) -> Span {
        let start = self.data.len();
        self.data.extend_from_slice(bytes);
        Span {
            start: start as u32,
            len: bytes.len() as u32,
        }
    }

    /// A varchar value.
    pub fn text(&mut self, text: &str) -> Value {
        Value::Text(self.span(text.as_bytes()))
    }

    /// A numeric value, as its text form.
    pub fn decimal(&mut self, text: &str) -> Value {
        Value::Decimal(self.span(text.as_bytes()))
    }

    /// A jsonb value, as JSON text.
    pub fn jsonb(&mut self, text: &str) -> Value {
        Value::Jsonb(self.span(text.as_bytes()))
    }

    pub fn bytea(&mut self, bytes: &[u8]) -> Value {
        Value::Bytea(self.span(bytes))
    }

    /// Close a row of `values` (child ranges counted from its first value).
    pub fn push_row(&mut self, values: impl IntoIterator<Item = Value>) {
        self.values.extend(values);
        self.ends.push(self.values.len() as u32);
        if !self.ops.is_empty() {
            self.ops.push(Op::Insert);
        }
    }

    /// Close a row that does `op`; a batch of inserts only lists no operations.
    pub fn push_row_with_op(&mut self, op: Op, values: impl IntoIterator<Item = Value>) {
        let listed = op != Op::Insert || !self.ops.is_empty();
        if listed {
            self.ops.resize(self.ends.len(), Op::Insert);
        }
        self.push_row(values);
        if listed {
            self.ops.resize(self.ends.len() - 1, Op::Insert);
            self.ops.push(op);
        }
    }
}

impl Default for Rows {
    fn default() -> Rows {
        Rows::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_read_back_as_built() {
        let mut rows = Rows::new();
        let a = rows.text("héllo");
        rows.push_row([Value::Int32(1), a]);
        rows.push_row([Value::Null]);
        let read: Vec<_> = read(&rows).collect::<Result<_, _>>().unwrap();
        assert_eq!(read.len(), 2);
        assert_eq!(read[0].values.len(), 2);
        let Value::Text(span) = read[0].values[1] else {
            panic!("not text")
        };
        assert_eq!(read[0].text(span).unwrap(), "héllo");
        assert!(matches!(read[1].values, [Value::Null]));
    }

    #[test]
    fn broken_layouts_and_spans_say_what_is_wrong() {
        let mut rows = Rows::new();
        rows.push_row([Value::Null, Value::Null]);
        rows.ends = vec![2, 1];
        let results: Vec<_> = read(&rows).collect();
        assert!(results[0].is_ok());
        let err = results[1].as_ref().err().unwrap();
        assert!(err.message.contains("ends at value 1"), "{err}");

        rows.ends = vec![1];
        let err = read(&rows).next().unwrap().err().unwrap();
        assert!(err.message.contains("batch has 2 values"), "{err}");

        let mut rows = Rows::new();
        let text = rows.text("é");
        rows.push_row([text]);
        let row = read(&rows).next().unwrap().unwrap();
        let err = row.text(Span { start: 1, len: 1 }).unwrap_err();
        assert!(err.contains("not UTF-8"), "{err}");
        let err = row.bytes(Span { start: 1, len: 9 }).unwrap_err();
        assert!(err.contains("outside the batch's 2 data bytes"), "{err}");
        let err = row
            .bytes(Span {
                start: u32::MAX,
                len: u32::MAX,
            })
            .unwrap_err();
        assert!(err.contains("outside"), "{err}");
    }
}
