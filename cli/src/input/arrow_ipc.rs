//! Arrow IPC input, the file form (`.arrow`, `.feather`) and the stream form (`.arrows`,
//! standard input): arrow-rs's readers, which read and validate one record batch at a time.

use std::io::{BufReader, Read};

use arrow_array::RecordBatch;
use arrow_ipc::reader::{FileReader, StreamReader};
use arrow_schema::{ArrowError, SchemaRef};

use super::columnar::{BatchReader, ColumnarError, InputFormat, Sliced};

fn malformed(format: InputFormat) -> impl Fn(ArrowError) -> ColumnarError {
    move |error| ColumnarError::Malformed {
        format,
        message: error.to_string(),
    }
}

pub(super) struct FileBatches {
    reader: FileReader<BufReader<std::fs::File>>,
    sliced: Sliced,
}

impl FileBatches {
    pub(super) fn open(file: std::fs::File, batch_rows: usize) -> Result<Self, ColumnarError> {
        let reader =
            FileReader::try_new_buffered(file, None).map_err(malformed(InputFormat::ArrowFile))?;
        Ok(FileBatches {
            reader,
            sliced: Sliced::new(batch_rows),
        })
    }
}

impl BatchReader for FileBatches {
    fn schema(&self) -> SchemaRef {
        self.reader.schema()
    }

    fn next_batch(&mut self) -> Result<Option<RecordBatch>, ColumnarError> {
        let reader = &mut self.reader;
        self.sliced.next(|| {
            reader
                .next()
                .transpose()
                .map_err(malformed(InputFormat::ArrowFile))
        })
    }
}

pub(super) struct StreamBatches {
    reader: StreamReader<BufReader<Box<dyn Read + Send>>>,
    sliced: Sliced,
}

impl StreamBatches {
    pub(super) fn open(
        input: Box<dyn Read + Send>,
        batch_rows: usize,
    ) -> Result<Self, ColumnarError> {
        let reader = StreamReader::try_new_buffered(input, None)
            .map_err(malformed(InputFormat::ArrowStream))?;
        Ok(StreamBatches {
            reader,
            sliced: Sliced::new(batch_rows),
        })
    }
}

impl BatchReader for StreamBatches {
    fn schema(&self) -> SchemaRef {
        self.reader.schema()
    }

    fn next_batch(&mut self) -> Result<Option<RecordBatch>, ColumnarError> {
        let reader = &mut self.reader;
        self.sliced.next(|| {
            reader
                .next()
                .transpose()
                .map_err(malformed(InputFormat::ArrowStream))
        })
    }
}
