//! After a crash: how much of the batch that was in flight a JetStream stream holds, read
//! from the message ids the sink gave it (`<sink_id>:<checkpoint>:<position>`), so that a
//! resumed run neither loses nor repeats rows once the duplicate window has passed.
//!
//! A KV bucket needs more than a prefix: messages on different keys are pipelined, so what
//! was stored of a checkpoint is, per key, a prefix of that key's messages ([`Stored`]). A
//! resumed run replays the checkpoint whole under its ids, and the host leaves out every
//! message its key's stream already holds, so no older value is stored after a newer one.

use std::collections::HashMap;

use async_nats::jetstream::stream::LastRawMessageErrorKind;

use crate::bindings::transport::TransportError;
use crate::policy::Reach;
use crate::transport::{NatsConnection, Route};
use crate::Target;

/// The header the sink's message ids travel in.
pub(crate) use nats_sink_rules::control_headers::MESSAGE_ID_HEADER;
/// The most messages read back to prove a stored prefix contiguous; a larger batch replays.
pub const MAX_VERIFIED_ROWS: u64 = 1 << 17;

/// What the stream holds of one checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredPrefix {
    /// Its first `rows` messages (positions `0..rows`) are stored, one after another, as the
    /// subject's last messages; nothing later of it is.
    Rows(u64),
    /// It cannot be told (core NATS, a templated subject, another writer on the subject, a
    /// gap): the caller replays the whole checkpoint under its ids.
    Unknown(String),
}

/// A message id the sink wrote, taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageId<'a> {
    /// The sink's id ([`crate::Sink::sink_id`]).
    pub sink_id: &'a str,
    /// The checkpoint the row was written in.
    pub checkpoint: u64,
    /// The row's place in its checkpoint, from 0.
    pub position: u64,
}

impl MessageId<'_> {
    /// `<sink_id>:<checkpoint>:<position>` taken apart; `None` for any other text.
    pub fn parse(text: &str) -> Option<MessageId<'_>> {
        // The sink id holds no `:`, so the last two fields are the numbers.
        let mut parts = text.rsplitn(3, ':');
        let position = parts.next()?.parse().ok()?;
        let checkpoint = parts.next()?.parse().ok()?;
        let sink_id = parts.next()?;
        Some(MessageId {
            sink_id,
            checkpoint,
            position,
        })
    }
}

/// Connect as a sink with `target` would (auth, TLS and `reach` apply; no stream is created)
/// and find how much of checkpoint `checkpoint` of sink `sink_id` the subject's stream holds.
pub async fn stored_prefix(
    mut target: Target,
    reach: &Reach,
    sink_id: &str,
    checkpoint: u64,
) -> Result<StoredPrefix, TransportError> {
    if target.subject_from_row {
        return Ok(StoredPrefix::Unknown(
            "the subject is filled from each row, so no one subject holds the batch".into(),
        ));
    }
    reach.check(&target.connect)?;
    target.connect.create_stream = None;
    let mut connection = NatsConnection::connect(target.connect).await?;
    let subject = target.subject;
    let stream = match connection.route(&subject).await? {
        Route::Core => {
            return Ok(StoredPrefix::Unknown(
                "core NATS keeps nothing to look at".into(),
            ))
        }
        Route::JetStream { stream } => stream,
    };
    let failed = |e: &(dyn std::error::Error + 'static)| {
        crate::transport::request_failure(
            e,
            format!("reading stream {stream}'s last message on `{subject}`: {e}"),
        )
    };
    let stream_handle = connection
        .jetstream()
        .get_stream(&stream)
        .await
        .map_err(|e| failed(&e))?;
    let last = match stream_handle
        .get_last_raw_message_by_subject(&subject)
        .await
    {
        Ok(message) => message,
        Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => {
            return Ok(StoredPrefix::Rows(0))
        }
        Err(e) => return Err(failed(&e)),
    };
    let ours = |message: &async_nats::jetstream::message::StreamMessage| -> Option<u64> {
        let id = MessageId::parse(message.headers.get(MESSAGE_ID_HEADER)?.as_str())?;
        (id.sink_id == sink_id && id.checkpoint == checkpoint).then_some(id.position)
    };
    let Some(position) = ours(&last) else {
        // The subject's last message is an earlier batch's (nothing of this one was stored)
        // or another writer's: either way, replaying the batch under its ids is what is left.
        return Ok(StoredPrefix::Unknown(format!(
            "the last message on `{subject}` is not from checkpoint {checkpoint}"
        )));
    };
    // A message resent after a failure can be stored after later ones, so the last one alone
    // does not prove the ones before it are there: read them back, one sequence at a time.
    if position >= MAX_VERIFIED_ROWS || position >= last.sequence {
        return Ok(StoredPrefix::Unknown(format!(
            "position {position} is past what a restart reads back"
        )));
    }
    for back in 1..=position {
        let sequence = last.sequence - back;
        let message = match stream_handle.get_raw_message(sequence).await {
            Ok(message) => message,
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => {
                return Ok(StoredPrefix::Unknown(format!(
                    "sequence {sequence} is gone from stream {stream}"
                )))
            }
            Err(e) => return Err(failed(&e)),
        };
        if message.subject.as_str() != subject || ours(&message) != Some(position - back) {
            return Ok(StoredPrefix::Unknown(format!(
                "the batch's messages are not one after another in stream {stream}"
            )));
        }
    }
    Ok(StoredPrefix::Rows(position + 1))
}

/// The most stream sequences a resume reads back through a KV bucket's stream, looking for
/// the checkpoint in flight; past it, the checkpoint is replayed under its ids.
pub const MAX_SCANNED_SEQUENCES: u64 = 1 << 17;

/// What a stream holds of one checkpoint of one sink: per subject, the last position stored.
/// JetStream stores each subject's messages of a checkpoint in write order (an upsert sink
/// sends a key's next message only once the last is acked; an append-only sink's stored
/// prefix is read back whole), so a message at or before that position is stored already.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stored {
    checkpoint: u64,
    /// `<sink_id>:<checkpoint>:`, how the checkpoint's message ids start.
    id_prefix: String,
    last_by_subject: HashMap<String, u64>,
}

impl Stored {
    /// Nothing stored yet of checkpoint `checkpoint` of sink `sink_id`.
    pub fn new(sink_id: &str, checkpoint: u64) -> Stored {
        Stored {
            checkpoint,
            id_prefix: format!("{sink_id}:{checkpoint}:"),
            last_by_subject: HashMap::new(),
        }
    }

    /// The stream holds the checkpoint's message at `position` on `subject`.
    pub fn add(&mut self, subject: &str, position: u64) {
        let last = self.last_by_subject.entry(subject.to_string()).or_default();
        *last = (*last).max(position);
    }

    /// The checkpoint it tells about.
    pub fn checkpoint(&self) -> u64 {
        self.checkpoint
    }

    /// The subjects the stream holds messages of the checkpoint on.
    pub fn subjects(&self) -> usize {
        self.last_by_subject.len()
    }

    /// True when the message with id `message_id` on `subject` is stored already.
    pub fn holds(&self, subject: &str, message_id: &str) -> bool {
        let Some(position) = message_id
            .strip_prefix(&self.id_prefix)
            .and_then(|p| p.parse::<u64>().ok())
        else {
            return false;
        };
        self.last_by_subject
            .get(subject)
            .is_some_and(|&last| position <= last)
    }
}

/// What a KV bucket's stream holds of checkpoint `checkpoint` of sink `sink_id`: its stored
/// messages, read back from the stream's end until a message of an earlier checkpoint of the
/// sink (the checkpoint began once that one was confirmed whole, so nothing of it is before).
/// `None` when that is not found within [`MAX_SCANNED_SEQUENCES`].
pub async fn stored_in_bucket(
    mut target: Target,
    reach: &Reach,
    sink_id: &str,
    checkpoint: u64,
) -> Result<Result<Stored, String>, TransportError> {
    let Some(bucket) = target.connect.kv.clone() else {
        return Ok(Err("the sink is not an upsert sink".into()));
    };
    reach.check(&target.connect)?;
    target.connect.create_stream = None;
    let connection = NatsConnection::connect(target.connect).await?;
    let stream_name = format!("KV_{}", bucket.name);
    let failed = |e: &(dyn std::error::Error + 'static)| {
        crate::transport::request_failure(
            e,
            format!("reading KV bucket `{}` back: {e}", bucket.name),
        )
    };
    let jetstream = connection.jetstream();
    // No bucket yet: nothing of the checkpoint is stored.
    if let crate::kv::BucketState::Missing { .. } = crate::kv::state(jetstream, &bucket).await? {
        return Ok(Ok(Stored::new(sink_id, checkpoint)));
    }
    let mut stream = jetstream
        .get_stream(&stream_name)
        .await
        .map_err(|e| failed(&e))?;
    let state = stream.info().await.map_err(|e| failed(&e))?.state.clone();
    let mut stored = Stored::new(sink_id, checkpoint);
    let mut sequence = state.last_sequence;
    let mut scanned = 0;
    while sequence >= state.first_sequence.max(1) {
        if scanned == MAX_SCANNED_SEQUENCES {
            return Ok(Err(format!(
                "no earlier checkpoint of the sink within the last {MAX_SCANNED_SEQUENCES} messages of stream {stream_name}"
            )));
        }
        scanned += 1;
        let message = match stream.get_raw_message(sequence).await {
            Ok(message) => message,
            // Gone: a key's later value replaced it (the bucket's history), or a purge.
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => {
                sequence -= 1;
                continue;
            }
            Err(e) => return Err(failed(&e)),
        };
        sequence -= 1;
        let id = message
            .headers
            .get(MESSAGE_ID_HEADER)
            .and_then(|id| MessageId::parse(id.as_str()));
        match id {
            Some(id) if id.sink_id == sink_id && id.checkpoint == checkpoint => {
                stored.add(message.subject.as_str(), id.position)
            }
            Some(id) if id.sink_id == sink_id => return Ok(Ok(stored)),
            // Another writer's: read past.
            _ => {}
        }
    }
    Ok(Ok(stored))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_split_at_the_last_two_colons() {
        assert_eq!(
            MessageId::parse("ns-0123:42:7"),
            Some(MessageId {
                sink_id: "ns-0123",
                checkpoint: 42,
                position: 7
            })
        );
        assert_eq!(
            MessageId::parse("orders.eu-1:18446744073709551615:0").map(|m| m.checkpoint),
            Some(u64::MAX)
        );
        assert_eq!(MessageId::parse("no-numbers"), None);
        let mut stored = Stored::new("ns-1", 42);
        stored.add("$KV.B.a", 3);
        stored.add("$KV.B.a", 1);
        assert!(stored.holds("$KV.B.a", "ns-1:42:0"));
        assert!(stored.holds("$KV.B.a", "ns-1:42:3"));
        assert!(!stored.holds("$KV.B.a", "ns-1:42:4"));
        assert!(!stored.holds("$KV.B.b", "ns-1:42:0"));
        assert!(!stored.holds("$KV.B.a", "ns-1:4:0"));
        assert!(!stored.holds("$KV.B.a", "ns-1:421:0"));
        assert_eq!(MessageId::parse("x:1:-1"), None);
    }
}
