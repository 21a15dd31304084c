//! Parquet input: arrow-rs's record batch reader, which decodes one row group's column
//! chunks at a time and hands them out in batches of a bounded size.

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};

use super::columnar::{BatchReader, ColumnarError, InputFormat};

pub(super) struct ParquetBatches {
    schema: SchemaRef,
    reader: ParquetRecordBatchReader,
}

fn malformed(error: impl std::fmt::Display) -> ColumnarError {
    ColumnarError::Malformed {
        format: InputFormat::Parquet,
        message: error.to_string(),
    }
}

impl ParquetBatches {
    pub(super) fn open(file: std::fs::File, batch_rows: usize) -> Result<Self, ColumnarError> {
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(malformed)?;
        let schema = builder.schema().clone();
        let reader = builder
            .with_batch_size(batch_rows)
            .build()
            .map_err(malformed)?;
        Ok(ParquetBatches { schema, reader })
    }
}

impl BatchReader for ParquetBatches {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn next_batch(&mut self) -> Result<Option<RecordBatch>, ColumnarError> {
        self.reader.next().transpose().map_err(malformed)
    }
}
