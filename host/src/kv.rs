//! An upsert sink's NATS KV bucket: found, or created as NATS clients create one (the stream
//! `KV_<bucket>` capturing `$KV.<bucket>.>`, rollups allowed, API deletes denied, discard
//! new, direct gets) when the options allow it, before anything is published.

use async_nats::jetstream::context::{GetStreamByNameErrorKind, GetStreamErrorKind};
use async_nats::jetstream::stream::{Config, DiscardPolicy};
use async_nats::jetstream::{Context, ErrorCode};
use nats_sink_rules::nats_names::kv_keys_filter;

use crate::bindings::transport::{KvBucket, TransportError};

/// What a sink's bucket is on a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BucketState {
    /// The bucket exists, keeping `history` values per key.
    Exists {
        /// `max_msgs_per_subject` of its stream.
        history: i64,
    },
    /// It does not exist; with `allow_create_stream` it is (or would be) created with this
    /// history.
    Missing {
        /// `None`: the options do not allow creating it.
        create_with_history: Option<u8>,
    },
}

impl BucketState {
    /// One line for `check` and logs.
    pub fn describe(&self, bucket: &str) -> String {
        match self {
            BucketState::Exists { history } => format!(
                "KV bucket `{bucket}` exists (stream KV_{bucket}, history {history})"
            ),
            BucketState::Missing {
                create_with_history: Some(history),
            } => format!(
                "KV bucket `{bucket}` does not exist; the sink creates it (history {history})"
            ),
            BucketState::Missing {
                create_with_history: None,
            } => format!(
                "KV bucket `{bucket}` does not exist; create it (`nats kv add {bucket}`) or set allow_create_stream = true"
            ),
        }
    }
}

/// The stream of KV bucket `name` as NATS clients create it (async-nats's
/// `kv_to_stream_config`, nats.go's `CreateKeyValue`): every key's subject, `history` values
/// per key, rollups allowed (a purge drops a key's history), deletes through the stream API
/// denied, new values refused rather than old ones dropped when full, direct gets. Built
/// here rather than by `create_key_value`, which first asks for the account's API level and
/// cannot read a 2.9 server's answer.
pub fn bucket_config(name: &str, history: u8) -> Config {
    Config {
        name: format!("KV_{name}"),
        subjects: vec![kv_keys_filter(name)],
        max_messages_per_subject: history.into(),
        max_bytes: -1,
        max_messages: -1,
        max_message_size: -1,
        allow_rollup: true,
        deny_delete: true,
        deny_purge: false,
        allow_direct: true,
        discard: DiscardPolicy::New,
        num_replicas: 1,
        ..Config::default()
    }
}

/// Whether `bucket` exists, without changing anything.
pub(crate) async fn state(
    jetstream: &Context,
    bucket: &KvBucket,
) -> Result<BucketState, TransportError> {
    let stream = format!("KV_{}", bucket.name);
    match jetstream.get_stream(&stream).await {
        Ok(mut found) => {
            let info = found.info().await.map_err(|e| {
                crate::transport::request_failure(
                    &e,
                    format!(
                        "could not read KV bucket `{}` (stream {stream}): {e}",
                        bucket.name
                    ),
                )
            })?;
            // A stream of that name that does not capture the keys' subjects is not a bucket:
            // puts to `$KV.<bucket>.<key>` would go out on core NATS and be stored nowhere.
            let keys = kv_keys_filter(&bucket.name);
            if !info.config.subjects.iter().any(|s| s == &keys) {
                return Err(TransportError::publish(format!(
                    "stream {stream} exists but does not capture `{keys}` (its subjects: {}), so it is not KV bucket `{}`: nothing put would be stored",
                    info.config.subjects.join(", "),
                    bucket.name
                )));
            }
            Ok(BucketState::Exists {
                history: info.config.max_messages_per_subject,
            })
        }
        Err(e) => match e.kind() {
            GetStreamErrorKind::JetStream(js) if js.error_code() == ErrorCode::STREAM_NOT_FOUND => {
                refuse_overlap(jetstream, bucket).await?;
                Ok(BucketState::Missing {
                    create_with_history: bucket.create_with_history,
                })
            }
            GetStreamErrorKind::Request if crate::transport::is_no_responders(&e) => Err(
                TransportError::publish(format!(
                    "KV bucket `{}`: the server has no JetStream, and a KV bucket is a JetStream stream",
                    bucket.name
                )),
            ),
            _ => Err(crate::transport::request_failure(
                &e,
                format!("could not tell whether KV bucket `{}` exists: {e}", bucket.name),
            )),
        },
    }
}

/// A missing bucket whose keys another stream already captures cannot be made (JetStream
/// refuses overlapping streams): said before anything is sent, by `check` as by `open`.
async fn refuse_overlap(jetstream: &Context, bucket: &KvBucket) -> Result<(), TransportError> {
    let keys = kv_keys_filter(&bucket.name);
    match jetstream.stream_by_subject(keys.as_str()).await {
        Ok(other) => Err(TransportError::publish(format!(
            "KV bucket `{}` does not exist and cannot be made: stream {other} already captures subjects under `{keys}`, and JetStream refuses a bucket's stream that overlaps it",
            bucket.name
        ))),
        Err(e) if e.kind() == GetStreamByNameErrorKind::NotFound => Ok(()),
        Err(e) => Err(crate::transport::request_failure(
            &e,
            format!(
                "could not tell whether another stream captures `{keys}` (KV bucket `{}`): {e}",
                bucket.name
            ),
        )),
    }
}

/// The bucket, created when it is missing and the options allow it; otherwise a `publish`
/// error (final: retrying cannot make a bucket appear) that says how to get one.
pub(crate) async fn ensure(jetstream: &Context, bucket: &KvBucket) -> Result<(), TransportError> {
    let found = state(jetstream, bucket).await?;
    let history = match found {
        BucketState::Exists { .. } => return Ok(()),
        BucketState::Missing {
            create_with_history: Some(history),
        } => history,
        missing @ BucketState::Missing { .. } => {
            return Err(TransportError::publish(missing.describe(&bucket.name)))
        }
    };
    match jetstream
        .create_stream(bucket_config(&bucket.name, history))
        .await
    {
        Ok(_) => {
            tracing::info!(bucket = %bucket.name, history, "created KV bucket");
            Ok(())
        }
        // Another sink may have created it between the lookup and now.
        Err(e) => match state(jetstream, bucket).await {
            Ok(BucketState::Exists { .. }) => Ok(()),
            _ => Err(crate::transport::request_failure(
                &e,
                format!(
                    "allow_create_stream: could not create KV bucket `{}`: {e}",
                    bucket.name
                ),
            )),
        },
    }
}
