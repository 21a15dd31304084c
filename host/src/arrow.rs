//! Rows as Arrow columns from a Rust program: record batches go to the component as one Arrow
//! IPC stream in one buffer, which the guest reads in place.

use arrow_array::RecordBatch;
use arrow_ipc::writer::StreamWriter;
use arrow_schema::ArrowError;

use crate::{HostError, PackedBytes, Sink};

/// `batches` (of one schema, at least one batch) as one uncompressed Arrow IPC stream: the
/// schema, each batch, the end marker.
pub fn ipc_stream(batches: &[RecordBatch]) -> Result<Vec<u8>, ArrowError> {
    let Some(first) = batches.first() else {
        return Err(ArrowError::InvalidArgumentError(
            "no record batch to write".into(),
        ));
    };
    // The schema and the end marker are small; the batches' buffers dominate.
    let capacity: usize = batches.iter().map(|b| b.get_array_memory_size()).sum();
    let mut writer = StreamWriter::try_new(Vec::with_capacity(capacity + 1024), &first.schema())?;
    for batch in batches {
        writer.write(batch)?;
    }
    writer.finish()?;
    writer.into_inner()
}

/// An IPC stream's bytes as `write-arrow` carries them, packed into words (the WIT's
/// `packed-bytes`); a stream past the 4 GiB one call can count is refused, never cut.
pub fn packed_stream(ipc: &[u8]) -> Result<PackedBytes, ArrowError> {
    let len = u32::try_from(ipc.len()).map_err(|_| {
        ArrowError::InvalidArgumentError(format!(
            "the stream is {} bytes; one write-arrow call carries at most {} (4 GiB): write fewer rows a call",
            ipc.len(),
            u32::MAX
        ))
    })?;
    Ok(PackedBytes {
        words: nats_sink_rules::packed::pack(ipc),
        len,
    })
}

impl Sink {
    /// Encode and publish `batch`, one message per row, the same bytes [`Sink::write`] gives
    /// for the same rows. Its fields are matched to the sink's columns by name, and each
    /// value is taken if it converts exactly to its column's type (the mapping is the WIT's,
    /// at `write-arrow`). A missing, extra or wrongly typed column is `invalid-schema`; a
    /// value that does not convert is `invalid-row` naming its row and column, with the rows
    /// before it published.
    pub async fn write_arrow(&mut self, batch: &RecordBatch) -> Result<(), HostError> {
        self.write_arrow_batches(std::slice::from_ref(batch)).await
    }

    /// [`Sink::write_arrow`] for several batches of one schema, sent as one stream: an
    /// `invalid-row`'s `row` counts across them.
    pub async fn write_arrow_batches(&mut self, batches: &[RecordBatch]) -> Result<(), HostError> {
        let ipc = ipc_stream(batches)?;
        self.write_arrow_ipc(&ipc).await.map(|_rows| ())
    }
}
