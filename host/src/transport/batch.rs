//! The guest's batch, checked: every span and index within the batch, every subject and
//! header valid, before anything is published.

use async_nats::{HeaderMap, HeaderName, HeaderValue, Subject};
use bytes::Bytes;
use nats_sink_rules::nats_names::kv_key;
use nats_sink_rules::packed::PackedBuffer;
use nats_sink_rules::span::within;

use crate::bindings::transport::{Batch, TransportError};

/// One message of a guest's batch, checked: what a [`Connection`](crate::Connection) sends.
#[derive(Debug, Clone)]
pub struct OutgoingMessage {
    /// A valid subject for publishing: no wildcard, no whitespace.
    pub subject: Subject,
    /// Headers in the order the guest gave them.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The payload, a slice of the batch's buffer.
    pub payload: Bytes,
}

/// A message as async-nats sends it, kept until its ack arrives so that it can be sent again.
pub(crate) struct Outgoing {
    pub(crate) subject: Subject,
    pub(crate) headers: Option<HeaderMap>,
    pub(crate) payload: Bytes,
    /// Its place among the messages since the last flush, from 0.
    pub(crate) position: u64,
}

impl From<OutgoingMessage> for Outgoing {
    fn from(message: OutgoingMessage) -> Outgoing {
        let headers = (!message.headers.is_empty()).then(|| {
            let mut map = HeaderMap::new();
            for (name, value) in message.headers {
                map.append(name, value);
            }
            map
        });
        Outgoing {
            subject: message.subject,
            headers,
            payload: message.payload,
            position: 0,
        }
    }
}

/// The guest's batch as messages, every span, index, subject and header checked first: what
/// a guest hands over is input, and must not make the host publish to a wildcard or a control
/// subject, write a malformed or changed header, or read outside the batch. Payloads and subjects become slices of
/// the batch's one buffer, so a message costs no copy of them.
/// With `kv_bucket`, subjects of that bucket's keys (`$KV.<bucket>.<key>`) are allowed too.
pub fn unpack(
    batch: Batch,
    kv_bucket: Option<&str>,
) -> Result<Vec<OutgoingMessage>, TransportError> {
    let refuse = |what: String| {
        TransportError::publish(format!("the sink produced an invalid message: {what}"))
    };
    // The words are the buffer: payloads and subjects are slices of them, no copy.
    let data = PackedBuffer::new(batch.data.words, batch.data.len.into())
        .map(Bytes::from_owner)
        .map_err(|e| refuse(format!("its data is packed wrong: {e}")))?;
    let slice = |(start, len): (u32, u32), what: &str| {
        within(start, len, data.len())
            .map(|range| data.slice(range))
            .ok_or_else(|| {
                refuse(format!(
                    "its {what} span {start}+{len} is outside the batch's {} bytes",
                    data.len()
                ))
            })
    };
    let names = batch
        .header_names
        .iter()
        .map(|name| match name.parse::<HeaderName>() {
            Ok(parsed) if !name.is_empty() => Ok(parsed),
            _ => Err(refuse(format!("header name {name:?}"))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    // Messages on one subject usually share its span: check it once.
    let mut last_subject: Option<((u32, u32), Subject)> = None;
    let mut messages = Vec::with_capacity(batch.messages.len());
    for message in &batch.messages {
        let key = (message.subject_start, message.subject_len);
        let subject = match &last_subject {
            Some((seen, subject)) if *seen == key => subject.clone(),
            _ => {
                let subject = Subject::from_utf8(slice(key, "subject")?)
                    .map_err(|_| refuse("a subject that is not UTF-8".into()))?;
                match kv_bucket {
                    Some(bucket) => nats_sink_rules::nats_names::check_kv_subject(&subject, bucket),
                    None => nats_sink_rules::nats_names::check_subject(&subject),
                }
                .map_err(|why| refuse(format!("subject {:?} {why}", subject.as_str())))?;
                last_subject = Some((key, subject.clone()));
                subject
            }
        };
        let headers = match message.headers_len {
            0 => Vec::new(),
            len => {
                let run = within(message.headers_start, len, batch.headers.len())
                    .map(|range| &batch.headers[range])
                    .ok_or_else(|| refuse("a header run outside the batch".into()))?;
                let mut headers = Vec::with_capacity(run.len());
                for header in run {
                    let name = names.get(header.name as usize).ok_or_else(|| {
                        refuse(format!(
                            "header name index {} outside the batch",
                            header.name
                        ))
                    })?;
                    let value = slice((header.value_start, header.value_len), "header value")?;
                    let text = std::str::from_utf8(&value)
                        .map_err(|_| refuse(format!("header {name} has a value not in UTF-8")))?;
                    nats_sink_rules::nats_names::check_header_value(text)
                        .map_err(|why| refuse(format!("header {name}'s value {why}")))?;
                    let value = text.parse::<HeaderValue>().map_err(|_| {
                        refuse(format!("header {name} has a value async-nats cannot carry"))
                    })?;
                    headers.push((name.clone(), value));
                }
                headers
            }
        };
        let payload = slice((message.payload_start, message.payload_len), "payload")?;
        let on_kv_key = kv_bucket.is_some_and(|bucket| kv_key(&subject, bucket).is_some());
        nats_sink_rules::control_headers::check_control_headers(
            on_kv_key,
            payload.len(),
            headers
                .iter()
                .map(|(name, value)| (name.as_ref(), value.as_str())),
        )
        .map_err(|why| refuse(format!("on subject {:?}: {why}", subject.as_str())))?;
        messages.push(OutgoingMessage {
            subject,
            headers,
            payload,
        });
    }
    Ok(messages)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::transport::{Header, Message, PackedBytes};

    fn packed(data: &[u8]) -> PackedBytes {
        PackedBytes {
            words: nats_sink_rules::packed::pack(data),
            len: data.len() as u32,
        }
    }

    fn batch(subject: &str, pairs: &[(&str, &str)]) -> Batch {
        let mut data = subject.as_bytes().to_vec();
        // (start, len) of `bytes`, appended.
        let run = |data: &mut Vec<u8>, bytes: &[u8]| {
            let start = data.len() as u32;
            data.extend_from_slice(bytes);
            (start, bytes.len() as u32)
        };
        let (payload_start, payload_len) = run(&mut data, b"{}");
        let headers: Vec<Header> = pairs
            .iter()
            .enumerate()
            .map(|(i, (_, value))| {
                let (value_start, value_len) = run(&mut data, value.as_bytes());
                Header {
                    name: i as u32,
                    value_start,
                    value_len,
                }
            })
            .collect();
        Batch {
            data: packed(&data),
            header_names: pairs.iter().map(|(name, _)| name.to_string()).collect(),
            messages: vec![Message {
                subject_start: 0,
                subject_len: subject.len() as u32,
                payload_start,
                payload_len,
                headers_start: 0,
                headers_len: headers.len() as u32,
            }],
            headers,
        }
    }

    #[test]
    fn a_bad_batch_from_the_guest_is_an_error_not_a_panic() {
        let refused = |b: Batch| match unpack(b, None) {
            Err(TransportError::Publish(why)) => why.message,
            Err(other) => panic!("{other:?}"),
            Ok(_) => panic!("accepted"),
        };
        assert!(refused(batch("", &[])).contains("subject \"\""));
        assert!(refused(batch("orders.*", &[])).contains("wildcard"));
        assert!(refused(batch("a b", &[])).contains("whitespace"));
        assert!(refused(batch("ok", &[("Bad:Name", "v")])).contains("header name"));
        assert!(refused(batch("ok", &[("", "v")])).contains("header name"));
        assert!(refused(batch("ok", &[("X-Id", "a\r\nPUB x 1")])).contains("line break"));
        // Issue 26: NUL and DEL passed in a subject and a header value, `$KV.` as a subject.
        assert!(refused(batch("tp.x\0y", &[])).contains("control character (found U+0000)"));
        assert!(refused(batch("tp.x\u{7f}y", &[])).contains("control character"));
        assert!(refused(batch("ok", &[("X-Id", "a\0b")])).contains("control character"));
        assert!(refused(batch("ok", &[("X-Id", " a")])).contains("trim"));
        assert!(refused(batch("$KV.b.k", &[])).contains("key-value bucket"));
        // Headers JetStream acts on: one `Nats-Rollup: all` would empty a stream.
        assert!(refused(batch("ok", &[("Nats-Rollup", "all")])).contains("Nats-Rollup: all"));
        assert!(refused(batch("ok", &[("nats-ttl", "1s")])).contains("JetStream acts on"));
        assert!(refused(batch("ok", &[("KV-Operation", "DEL")])).contains("KV bucket"));
        assert!(unpack(batch("ok", &[("Nats-Msg-Id", "s:1:1")]), None).is_ok());
        let mut outside = batch("ok", &[]);
        outside.messages[0].payload_len = 1000;
        assert!(refused(outside).contains("payload span 2+1000 is outside the batch's 4 bytes"));
        let mut overflow = batch("ok", &[]);
        overflow.messages[0].subject_start = u32::MAX;
        overflow.messages[0].subject_len = u32::MAX;
        assert!(refused(overflow).contains("outside the batch"));
        let mut bad_index = batch("ok", &[("X-A", "v")]);
        bad_index.headers[0].name = 7;
        assert!(refused(bad_index).contains("header name index 7"));
        let mut bad_run = batch("ok", &[("X-A", "v")]);
        bad_run.messages[0].headers_start = 3;
        assert!(refused(bad_run).contains("header run outside the batch"));
        let mut not_utf8 = batch("ok", &[]);
        not_utf8.data.words[0] |= 0xff;
        assert!(refused(not_utf8).contains("not UTF-8"));
        // A count the words do not hold: eight bytes claimed past them, or a word too many.
        let mut claims_more = batch("ok", &[]);
        claims_more.data.len += 8;
        assert!(refused(claims_more).contains("packed wrong"));
        let mut extra_word = batch("ok", &[]);
        extra_word.data.words.push(0);
        assert!(refused(extra_word).contains("packed wrong"));

        let fine = unpack(batch("orders.eu", &[("Nats-Msg-Id", "s:1:0")]), None).unwrap();
        assert_eq!(fine[0].subject.as_str(), "orders.eu");
        assert_eq!(&fine[0].payload[..], b"{}");
        let header = |(name, value): &(HeaderName, HeaderValue)| {
            (name.to_string(), value.as_str().to_string())
        };
        assert_eq!(
            fine[0].headers.iter().map(header).collect::<Vec<_>>(),
            [("Nats-Msg-Id".to_string(), "s:1:0".to_string())]
        );
    }

    /// A run's (start, len): mostly within a small batch, sometimes anything.
    fn any_run() -> impl proptest::strategy::Strategy<Value = (u32, u32)> {
        use proptest::prelude::*;
        prop_oneof![(0u32..48, 0u32..48), (any::<u32>(), any::<u32>())]
    }

    proptest::proptest! {
        /// The host's checks of a guest's batch: any batch is messages or a refusal.
        #[test]
        fn any_batch_from_the_guest_is_messages_or_a_refusal(
            data in proptest::prop_oneof![
                proptest::collection::vec(proptest::prelude::any::<u8>(), 0..48),
                proptest::strategy::Strategy::prop_map("[a-z.*> \r\n:é]{0,48}", String::into_bytes),
            ],
            header_names in proptest::collection::vec("[A-Za-z: é-]{0,6}", 0..3),
            headers in proptest::collection::vec((0u32..4, any_run()), 0..4),
            messages in proptest::collection::vec((any_run(), any_run(), any_run()), 0..4),
        ) {
            use proptest::prelude::*;
            let batch = Batch {
                data: packed(&data),
                header_names,
                headers: headers
                    .into_iter()
                    .map(|(name, (value_start, value_len))| Header { name, value_start, value_len })
                    .collect(),
                messages: messages
                    .into_iter()
                    .map(|(subject, payload, headers)| Message {
                        subject_start: subject.0,
                        subject_len: subject.1,
                        payload_start: payload.0,
                        payload_len: payload.1,
                        headers_start: headers.0,
                        headers_len: headers.1,
                    })
                    .collect(),
            };
            let count = batch.messages.len();
            match unpack(batch, None) {
                Ok(out) => prop_assert_eq!(out.len(), count),
                Err(TransportError::Publish(why)) => {
                    prop_assert!(why.message.starts_with("the sink produced an invalid message"))
                }
                Err(other) => prop_assert!(false, "{other:?}"),
            }
        }
    }
}
