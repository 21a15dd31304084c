//! Rows as Arrow columns from a Rust program: a record batch goes to the component as one
//! Arrow IPC stream in one buffer, which the guest reads in place.

use arrow_array::RecordBatch;
use arrow_ipc::writer::StreamWriter;

use crate::{HostError, Sink};

/// `batch` as one uncompressed Arrow IPC stream: its schema, the batch, the end marker.
pub fn ipc_stream(batch: &RecordBatch) -> Result<Vec<u8>, HostError> {
    // Schema and end marker are small; the batch's buffers dominate.
    let capacity = batch.get_array_memory_size() + 1024;
    let mut writer = StreamWriter::try_new(Vec::with_capacity(capacity), &batch.schema())?;
    writer.write(batch)?;
    writer.finish()?;
    Ok(writer.into_inner()?)
}

impl Sink {
    /// Encode and publish `batch`, one message per row, the same bytes [`Sink::write`] gives
    /// for the same rows. Its fields are matched to the sink's columns by name, and each
    /// value is taken if it converts exactly to its column's type (the mapping is in the
    /// WIT's `write-arrow`). A wrong or missing column is `invalid-schema`; a value that does
    /// not convert is `invalid-row` naming its row and column, with the rows before it
    /// published.
    pub async fn write_arrow(&mut self, batch: &RecordBatch) -> Result<(), HostError> {
        let ipc = ipc_stream(batch)?;
        self.write_ipc(&ipc, batch.num_rows()).await
    }
}
