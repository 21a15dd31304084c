//! Arrow IPC input, the file form (`.arrow`, `.feather`) and the stream form (`.arrows`,
//! standard input): arrow-rs's readers, which read and validate one record batch at a time.

use std::io::Read;

use arrow_array::{RecordBatch, RecordBatchReader};
use arrow_ipc::reader::{FileReader, StreamReader};
use arrow_schema::{ArrowError, SchemaRef};

use super::columnar::{BatchReader, ColumnarError, InputFormat, Sliced};

fn malformed(format: InputFormat) -> impl Fn(ArrowError) -> ColumnarError {
    move |error| ColumnarError::Malformed {
        format,
        message: error.to_string(),
    }
}

/// Either IPC reader's batches, cut to the batch size (an IPC writer chooses its own).
struct IpcBatches<R> {
    reader: R,
    format: InputFormat,
    sliced: Sliced,
}

/// Open an IPC file, which is read through its footer's index of batches.
pub(super) fn open_file(
    file: std::fs::File,
    batch_rows: usize,
) -> Result<Box<dyn BatchReader>, ColumnarError> {
    let format = InputFormat::ArrowFile;
    let reader = FileReader::try_new_buffered(file, None).map_err(malformed(format))?;
    Ok(Box::new(IpcBatches::new(reader, format, batch_rows)))
}

/// Open an IPC stream, read as it comes.
pub(super) fn open_stream(
    input: Box<dyn Read + Send>,
    batch_rows: usize,
) -> Result<Box<dyn BatchReader>, ColumnarError> {
    let format = InputFormat::ArrowStream;
    let reader = StreamReader::try_new_buffered(input, None).map_err(malformed(format))?;
    Ok(Box::new(IpcBatches::new(reader, format, batch_rows)))
}

impl<R> IpcBatches<R> {
    fn new(reader: R, format: InputFormat, batch_rows: usize) -> Self {
        IpcBatches {
            reader,
            format,
            sliced: Sliced::new(batch_rows),
        }
    }
}

impl<R: RecordBatchReader + Send> BatchReader for IpcBatches<R> {
    fn schema(&self) -> SchemaRef {
        self.reader.schema()
    }

    fn next_batch(&mut self) -> Result<Option<RecordBatch>, ColumnarError> {
        let (reader, format) = (&mut self.reader, self.format);
        self.sliced
            .next(|| reader.next().transpose().map_err(malformed(format)))
    }
}
