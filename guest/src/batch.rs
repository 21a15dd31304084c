//! Messages packed into one `batch` for one crossing of the boundary: every subject, header
//! value and payload is a span of one byte buffer (see `wit/nats-sink.wit`), which crosses as
//! `packed-bytes`.

use nats_sink_rules::append::append;
use nats_sink_rules::packed;

use crate::bindings::{Batch, Header, Message, PackedBytes, Span};

/// Where a batch ended, to take back a row that failed half way.
#[derive(Debug, Clone, Copy)]
pub struct Mark {
    data: usize,
    headers: usize,
}

/// Builds a batch message by message.
pub struct BatchBuilder {
    data: Vec<u8>,
    header_names: Vec<String>,
    headers: Vec<Header>,
    messages: Vec<Message>,
}

fn span(start: usize, end: usize) -> Span {
    Span {
        start: start as u32,
        len: (end - start) as u32,
    }
}

impl BatchBuilder {
    /// An empty batch whose headers name `header_names`, with room for `bytes` of data.
    pub fn new(header_names: Vec<String>, bytes: usize, messages: usize) -> BatchBuilder {
        BatchBuilder {
            data: Vec::with_capacity(bytes),
            header_names,
            headers: Vec::new(),
            messages: Vec::with_capacity(messages),
        }
    }

    /// The buffer, to encode into in place; `span_since` then names what was written.
    pub fn data(&mut self) -> &mut Vec<u8> {
        &mut self.data
    }

    pub fn data_len(&self) -> usize {
        self.data.len()
    }

    /// The bytes written since `start`.
    pub fn span_since(&self, start: usize) -> Span {
        span(start, self.data.len())
    }

    /// The bytes `span` names (a span this builder made).
    pub fn bytes_of(&self, span: Span) -> &[u8] {
        let start = span.start as usize;
        &self.data[start..start + span.len as usize]
    }

    pub fn push_bytes(&mut self, bytes: &[u8]) -> Span {
        let start = self.data.len();
        append(&mut self.data, bytes);
        self.span_since(start)
    }

    /// Header `name` (an index into the header names) of the message being built.
    pub fn push_header(&mut self, name: u32, value: Span) {
        self.headers.push(Header {
            name,
            value_start: value.start,
            value_len: value.len,
        });
    }

    pub fn mark(&self) -> Mark {
        Mark {
            data: self.data.len(),
            headers: self.headers.len(),
        }
    }

    /// Drop everything written since `mark`.
    pub fn rewind(&mut self, mark: Mark) {
        self.data.truncate(mark.data);
        self.headers.truncate(mark.headers);
    }

    /// Close the message whose headers were pushed since `mark`.
    pub fn push_message(&mut self, mark: Mark, subject: Span, payload: Span) {
        let headers = span(mark.headers, self.headers.len());
        self.messages.push(Message {
            subject_start: subject.start,
            subject_len: subject.len,
            payload_start: payload.start,
            payload_len: payload.len,
            headers_start: headers.start,
            headers_len: headers.len,
        });
    }

    pub fn messages(&self) -> usize {
        self.messages.len()
    }

    /// The batch, its bytes packed into words (one copy).
    pub fn finish(self) -> Batch {
        Batch {
            data: PackedBytes {
                words: packed::pack(&self.data),
                len: self.data.len() as u32,
            },
            header_names: self.header_names,
            headers: self.headers,
            messages: self.messages,
        }
    }
}

/// One message of a batch as owned parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpacked {
    pub subject: String,
    pub headers: Vec<(String, String)>,
    pub payload: Vec<u8>,
}

/// A batch's messages as owned parts, or a description of the first span or index that
/// points outside the batch.
pub fn unpack(batch: &Batch) -> Result<Vec<Unpacked>, String> {
    let run = |start, len| Span { start, len };
    let data =
        packed::unpack(&batch.data.words, batch.data.len.into()).map_err(|e| e.to_string())?;
    let bytes = |s: &Span| {
        crate::within(s.start, s.len, data.len())
            .map(|range| &data[range])
            .ok_or_else(|| format!("span {}+{} is outside the data", s.start, s.len))
    };
    let text =
        |s: &Span| bytes(s).and_then(|b| String::from_utf8(b.to_vec()).map_err(|e| e.to_string()));
    batch
        .messages
        .iter()
        .map(|m| {
            let headers = crate::within(m.headers_start, m.headers_len, batch.headers.len())
                .map(|range| &batch.headers[range])
                .ok_or("header run outside the batch")?
                .iter()
                .map(|h| {
                    let name = batch
                        .header_names
                        .get(h.name as usize)
                        .ok_or("header name index outside the batch")?;
                    Ok((name.clone(), text(&run(h.value_start, h.value_len))?))
                })
                .collect::<Result<_, String>>()?;
            Ok(Unpacked {
                subject: text(&run(m.subject_start, m.subject_len))?,
                headers,
                payload: bytes(&run(m.payload_start, m.payload_len))?.to_vec(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_share_one_buffer_and_a_rewind_drops_a_half_built_one() {
        let mut b = BatchBuilder::new(vec!["X-A".into()], 64, 2);
        let subject = b.push_bytes(b"orders");
        let mark = b.mark();
        let start = b.data_len();
        b.data().extend_from_slice(b"{\"id\":1}");
        let payload = b.span_since(start);
        let value = b.push_bytes(b"v1");
        b.push_header(0, value);
        b.push_message(mark, subject, payload);

        let half = b.mark();
        b.data().extend_from_slice(b"{\"id\":");
        b.push_header(0, Span { start: 0, len: 1 });
        b.rewind(half);

        let mark = b.mark();
        let payload = b.push_bytes(b"{}");
        b.push_message(mark, subject, payload);
        assert_eq!(b.messages(), 2);
        let batch = b.finish();
        let bytes = b"orders{\"id\":1}v1{}";
        assert_eq!(batch.data.len as usize, bytes.len());
        assert_eq!(batch.data.words, packed::pack(bytes));
        assert_eq!(
            unpack(&batch).unwrap(),
            vec![
                Unpacked {
                    subject: "orders".into(),
                    headers: vec![("X-A".into(), "v1".into())],
                    payload: b"{\"id\":1}".to_vec(),
                },
                Unpacked {
                    subject: "orders".into(),
                    headers: vec![],
                    payload: b"{}".to_vec(),
                },
            ]
        );
    }

    #[test]
    fn spans_outside_the_batch_are_reported() {
        let mut b = BatchBuilder::new(vec![], 0, 1);
        let mark = b.mark();
        b.push_message(mark, Span { start: 0, len: 5 }, Span { start: 0, len: 0 });
        assert!(unpack(&b.finish())
            .unwrap_err()
            .contains("outside the data"));
    }
}
