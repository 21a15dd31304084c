//! Columnar input files (Parquet, Arrow IPC file and stream): which format a path is, and one
//! small interface over their readers, which hand out record batches one at a time (never the
//! whole file) of at most a given number of rows.

use std::fmt;
use std::path::Path;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;

use super::arrow_ipc;
use super::parquet_file;

/// What `--input` holds (`--input-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InputFormat {
    /// JSON Lines, one object per row.
    #[value(name = "jsonl")]
    JsonLines,
    /// Debezium change events, one per line (`op` c, r, u or d with `before`/`after`, bare or
    /// in Kafka Connect's `{"schema":...,"payload":...}`), as `kcat` reads a Debezium topic;
    /// `before`/`after` follow --schema; tombstones are skipped.
    #[value(name = "debezium")]
    Debezium,
    /// A Parquet file.
    #[value(name = "parquet")]
    Parquet,
    /// An Arrow IPC file (`.arrow`, `.feather`: Feather v2 is the IPC file format).
    #[value(name = "arrow")]
    ArrowFile,
    /// An Arrow IPC stream (`.arrows`); the only columnar form standard input can carry.
    #[value(name = "arrows")]
    ArrowStream,
}

impl InputFormat {
    /// The format `--input-format` names, or else the one the path's extension names; JSON
    /// Lines for standard input and for any other extension.
    pub fn of(given: Option<InputFormat>, path: &str) -> InputFormat {
        if let Some(format) = given {
            return format;
        }
        let extension = Path::new(path)
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match extension.as_deref() {
            Some("parquet") => InputFormat::Parquet,
            Some("arrow" | "feather") => InputFormat::ArrowFile,
            Some("arrows") => InputFormat::ArrowStream,
            _ => InputFormat::JsonLines,
        }
    }

    /// True for the formats read as record batches.
    pub fn is_columnar(self) -> bool {
        !matches!(self, InputFormat::JsonLines | InputFormat::Debezium)
    }
}

impl fmt::Display for InputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InputFormat::JsonLines => "JSON Lines",
            InputFormat::Debezium => "Debezium JSON",
            InputFormat::Parquet => "Parquet",
            InputFormat::ArrowFile => "Arrow IPC file",
            InputFormat::ArrowStream => "Arrow IPC stream",
        })
    }
}

/// Why a columnar input could not be read: the file is missing, malformed or truncated.
#[derive(Debug, thiserror::Error)]
pub enum ColumnarError {
    #[error("opening {path}: {source}")]
    Open {
        path: String,
        source: std::io::Error,
    },
    #[error("{format} input: {message}")]
    Malformed {
        format: InputFormat,
        message: String,
    },
    #[error("standard input can carry an Arrow IPC stream only, not {0} (which needs a file it can seek in)")]
    NotAStream(InputFormat),
}

/// A reader of record batches, all of one schema, each of at most the rows asked for.
pub trait BatchReader: Send {
    /// The schema every batch has.
    fn schema(&self) -> SchemaRef;
    /// The next batch, or `None` at the end of the input.
    fn next_batch(&mut self) -> Result<Option<RecordBatch>, ColumnarError>;
}

/// Open `path` (`-`: standard input, a stream only) as `format`, for batches of at most
/// `batch_rows` rows.
pub fn open(
    format: InputFormat,
    path: &str,
    batch_rows: usize,
) -> Result<Box<dyn BatchReader>, ColumnarError> {
    let batch_rows = batch_rows.max(1);
    if path == "-" {
        return match format {
            InputFormat::ArrowStream => {
                arrow_ipc::open_stream(Box::new(std::io::stdin()), batch_rows)
            }
            other => Err(ColumnarError::NotAStream(other)),
        };
    }
    let file = std::fs::File::open(path).map_err(|source| ColumnarError::Open {
        path: path.to_string(),
        source,
    })?;
    match format {
        InputFormat::Parquet => Ok(Box::new(parquet_file::ParquetBatches::open(
            file, batch_rows,
        )?)),
        InputFormat::ArrowFile => arrow_ipc::open_file(file, batch_rows),
        InputFormat::ArrowStream => arrow_ipc::open_stream(Box::new(file), batch_rows),
        InputFormat::JsonLines | InputFormat::Debezium => Err(ColumnarError::Malformed {
            format,
            message: format!("{format} is not read as record batches"),
        }),
    }
}

/// Hands out a reader's batches cut to at most `rows` rows each (zero-copy slices): an IPC
/// writer chooses its own batch sizes.
pub(super) struct Sliced {
    rows: usize,
    current: Option<(RecordBatch, usize)>,
}

impl Sliced {
    pub(super) fn new(rows: usize) -> Sliced {
        Sliced {
            rows,
            current: None,
        }
    }

    /// The next slice, taking a new batch from `next` when the current one is used up.
    pub(super) fn next(
        &mut self,
        mut next: impl FnMut() -> Result<Option<RecordBatch>, ColumnarError>,
    ) -> Result<Option<RecordBatch>, ColumnarError> {
        loop {
            if let Some((batch, offset)) = self.current.take() {
                if offset < batch.num_rows() {
                    let length = self.rows.min(batch.num_rows() - offset);
                    let slice = batch.slice(offset, length);
                    self.current = Some((batch, offset + length));
                    return Ok(Some(slice));
                }
            }
            match next()? {
                None => return Ok(None),
                Some(batch) => self.current = Some((batch, 0)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_follow_extension_unless_named() {
        assert_eq!(InputFormat::of(None, "a.parquet"), InputFormat::Parquet);
        assert_eq!(InputFormat::of(None, "a.PARQUET"), InputFormat::Parquet);
        assert_eq!(InputFormat::of(None, "a.feather"), InputFormat::ArrowFile);
        assert_eq!(InputFormat::of(None, "a.arrow"), InputFormat::ArrowFile);
        assert_eq!(InputFormat::of(None, "a.arrows"), InputFormat::ArrowStream);
        assert_eq!(InputFormat::of(None, "a.jsonl"), InputFormat::JsonLines);
        assert_eq!(InputFormat::of(None, "-"), InputFormat::JsonLines);
        assert_eq!(
            InputFormat::of(Some(InputFormat::Parquet), "data.bin"),
            InputFormat::Parquet
        );
    }
}
