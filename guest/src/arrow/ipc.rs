//! An Arrow IPC stream as `write-arrow` receives it, read message by message. The messages are
//! framed here, so that every length is checked against the bytes before arrow-rs reads them,
//! a compressed body is refused by name, and a record batch cannot declare more rows than its
//! body could hold; arrow-rs then decodes each message zero-copy (its arrays are slices of the
//! input wherever they are aligned) and validates its arrays.

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_buffer::Buffer;
use arrow_ipc::reader::StreamDecoder;
use arrow_ipc::MessageHeader;
use arrow_schema::Schema;

/// What the next message of a stream holds, once it is read.
pub enum Item {
    /// The stream's schema (its first message).
    Schema(Arc<Schema>),
    /// A record batch of the schema.
    Batch(RecordBatch),
}

/// Why a stream cannot be read, and at which byte of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpcError {
    /// Offset of the message at fault.
    pub at: usize,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for IpcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the Arrow IPC stream is unreadable at byte {}: {}",
            self.at, self.message
        )
    }
}

/// The marker before each message's length in the current format.
const CONTINUATION: [u8; 4] = [0xff; 4];

/// What an Arrow IPC *file* starts with (a stream never does).
const FILE_MAGIC: &[u8] = b"ARROW1";

/// A bound on a node's length by its body: every array the sink takes keeps at least one bit
/// per value in some buffer of the body (a validity or value bitmap, offsets, values), so a
/// node cannot hold more than 8 values per body byte. This stops a few bytes from declaring
/// billions of rows (a `FixedSizeBinary(0)` column without nulls is the one layout it refuses).
fn most_values(body_len: usize) -> i64 {
    (body_len as i64).saturating_mul(8).saturating_add(8)
}

/// The messages of one stream.
pub struct Stream {
    bytes: Buffer,
    at: usize,
    decoder: StreamDecoder,
    ended: bool,
}

impl Stream {
    /// A stream over `bytes`, which it takes without copying.
    pub fn new(bytes: impl Into<Buffer>) -> Stream {
        Stream {
            bytes: bytes.into(),
            at: 0,
            decoder: StreamDecoder::new(),
            ended: false,
        }
    }

    fn error(&self, message: impl Into<String>) -> IpcError {
        IpcError {
            at: self.at,
            message: message.into(),
        }
    }

    /// The next schema or record batch, `None` at the end of the stream (its end-of-stream
    /// marker, or the end of the bytes), or why the stream is unreadable. Dictionary batches
    /// are taken in on the way.
    pub fn next_item(&mut self) -> Result<Option<Item>, IpcError> {
        loop {
            let Some((header, total)) = self.frame()? else {
                return Ok(None);
            };
            let mut message = self.bytes.slice_with_length(self.at, total);
            let decoded = self
                .decoder
                .decode(&mut message)
                .map_err(|e| self.error(e.to_string()))?;
            if !message.is_empty() {
                return Err(self.error("the message was not read whole"));
            }
            self.at += total;
            match (decoded, header) {
                (Some(batch), _) => return Ok(Some(Item::Batch(batch))),
                (None, MessageHeader::Schema) => {
                    let schema = self
                        .decoder
                        .schema()
                        .ok_or_else(|| self.error("the schema message held no schema"))?;
                    return Ok(Some(Item::Schema(schema)));
                }
                (None, _) => continue,
            }
        }
    }

    /// The header type and whole length (prefix, flatbuffer and body) of the message at
    /// `self.at`, checked; `None` at the end of the stream.
    fn frame(&mut self) -> Result<Option<(MessageHeader, usize)>, IpcError> {
        let bytes = self.bytes.as_slice();
        let rest = &bytes[self.at..];
        if self.ended {
            if rest.is_empty() {
                return Ok(None);
            }
            return Err(self.error(format!(
                "{} bytes follow the end-of-stream marker",
                rest.len()
            )));
        }
        if rest.is_empty() {
            if self.at == 0 {
                return Err(self.error("the stream is empty (it has no schema message)"));
            }
            return Ok(None);
        }
        if self.at == 0 && rest.starts_with(FILE_MAGIC) {
            return Err(self.error(
                "this is an Arrow IPC file (it starts with `ARROW1`), not a stream: write it with a stream writer (pyarrow.ipc.new_stream, apache-arrow's tableToIPC(table, 'stream'), arrow-rs's StreamWriter)",
            ));
        }
        let word = |at: usize| -> Option<u32> {
            rest.get(at..at + 4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        };
        // A stream written before Arrow 0.15 has no continuation marker.
        let prefix = if rest.starts_with(&CONTINUATION) {
            8
        } else {
            4
        };
        let Some(len) = word(prefix - 4) else {
            return Err(self.error(format!(
                "{} bytes are too few for a message length",
                rest.len()
            )));
        };
        if len == 0 {
            // The end-of-stream marker.
            self.ended = true;
            self.at += prefix;
            return self.frame();
        }
        let len = len as usize;
        let Some(metadata) = rest.get(prefix..prefix + len) else {
            return Err(self.error(format!(
                "the message declares {len} bytes of metadata but {} remain",
                rest.len() - prefix.min(rest.len())
            )));
        };
        let message = arrow_ipc::root_as_message(metadata)
            .map_err(|e| self.error(format!("the message metadata is invalid: {e}")))?;
        let body_len = message.bodyLength();
        let after = rest.len() - prefix - len;
        if body_len < 0 || body_len as u64 > after as u64 {
            return Err(self.error(format!(
                "the message declares a body of {body_len} bytes but {after} remain"
            )));
        }
        let body_len = body_len as usize;
        let header = message.header_type();
        let data = match header {
            MessageHeader::Schema => None,
            MessageHeader::RecordBatch => message.header_as_record_batch(),
            MessageHeader::DictionaryBatch => message
                .header_as_dictionary_batch()
                .and_then(|dictionary| dictionary.data()),
            other => {
                return Err(self.error(format!(
                    "a {other:?} message has no place in a record batch stream"
                )))
            }
        };
        if let Some(data) = data {
            if data.compression().is_some() {
                return Err(self.error(
                    "the record batch is compressed (lz4 or zstd), which the sink does not read; write the stream uncompressed",
                ));
            }
            let most = most_values(body_len);
            if !(0..=most).contains(&data.length()) {
                return Err(self.error(format!(
                    "the record batch declares {} rows, more than its {body_len}-byte body can hold",
                    data.length()
                )));
            }
            for node in data.nodes().into_iter().flatten() {
                if !(0..=most).contains(&node.length())
                    || !(0..=node.length()).contains(&node.null_count())
                {
                    return Err(self.error(format!(
                        "an array declares {} values with {} nulls, which its {body_len}-byte body cannot hold",
                        node.length(),
                        node.null_count()
                    )));
                }
            }
        }
        Ok(Some((header, prefix + len + body_len)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipc_file_is_refused_as_a_file_not_as_a_bad_length() {
        let batch = arrow_array::RecordBatch::try_from_iter([(
            "v",
            Arc::new(arrow_array::Int32Array::from(vec![1])) as arrow_array::ArrayRef,
        )])
        .unwrap();
        let mut writer =
            arrow_ipc::writer::FileWriter::try_new(Vec::new(), &batch.schema()).unwrap();
        writer.write(&batch).unwrap();
        writer.finish().unwrap();
        let mut stream = Stream::new(writer.into_inner().unwrap());
        let err = stream.next_item().err().expect("a file is no stream");
        assert!(err.message.contains("Arrow IPC file"), "{err}");
    }
}
