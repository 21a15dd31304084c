//! The stream a sink asks for with `allow_create_stream`: found where one already captures its
//! subject, otherwise created with the requested limits before anything is published.

use async_nats::jetstream::context::{GetStreamByNameError, GetStreamByNameErrorKind};
use async_nats::jetstream::stream::Config;
use async_nats::jetstream::Context;

use crate::bindings::transport::{StreamRequest, TransportError};

/// What a sink's stream request comes to on a server.
#[derive(Debug, Clone)]
pub enum StreamPlan {
    /// A stream already captures the requested subject: nothing is created.
    Captured {
        /// The stream's name.
        stream: String,
    },
    /// No stream does: this one is (or would be) created.
    Create(StreamRequest),
}

/// Which stream captures `request.subject`, if any, without changing anything (for `check`).
pub(crate) async fn plan(
    jetstream: &Context,
    request: &StreamRequest,
) -> Result<StreamPlan, TransportError> {
    match jetstream.stream_by_subject(request.subject.as_str()).await {
        Ok(stream) => Ok(StreamPlan::Captured { stream }),
        Err(e) => match e.kind() {
            GetStreamByNameErrorKind::NotFound => Ok(StreamPlan::Create(request.clone())),
            _ => Err(lookup_error(request, &e)),
        },
    }
}

/// The stream that captures `request.subject`, created from `request` when none does.
pub(crate) async fn ensure(
    jetstream: &Context,
    request: &StreamRequest,
) -> Result<StreamPlan, TransportError> {
    let plan = plan(jetstream, request).await?;
    let StreamPlan::Create(request) = &plan else {
        return Ok(plan);
    };
    match jetstream.create_stream(config(request)).await {
        Ok(_) => {
            tracing::info!(stream = %request.name, subject = %request.subject, "created stream");
            Ok(plan)
        }
        // Another sink with the same subject may have created it between the lookup and now:
        // then it captures the subject and is used. Otherwise the server's reason stands
        // (a subject overlapping another stream's, a limit it refuses).
        Err(e) => match self::plan(jetstream, request).await {
            Ok(captured @ StreamPlan::Captured { .. }) => Ok(captured),
            _ => Err(crate::transport::request_failure(
                &e,
                format!(
                    "allow_create_stream: could not create {}: {e}",
                    describe(request)
                ),
            )),
        },
    }
}

/// The stream config a request makes; every other field is the server's default.
pub(crate) fn config(request: &StreamRequest) -> Config {
    Config {
        name: request.name.clone(),
        subjects: vec![request.subject.clone()],
        max_bytes: request.max_bytes,
        max_messages: request.max_messages,
        max_messages_per_subject: request.max_messages_per_subject,
        max_consumers: request.max_consumers,
        max_message_size: request.max_message_size,
        ..Config::default()
    }
}

/// One line for `check` and logs: the stream, what it captures and its limits.
pub fn describe(request: &StreamRequest) -> String {
    let limit = |v: i64| match v {
        v if v < 0 => "no limit".to_string(),
        v => v.to_string(),
    };
    format!(
        "stream {} capturing `{}` (max_bytes {}, max_messages {}, max_messages_per_subject {}, max_consumers {}, max_message_size {})",
        request.name,
        request.subject,
        limit(request.max_bytes),
        limit(request.max_messages),
        limit(request.max_messages_per_subject),
        limit(request.max_consumers.into()),
        limit(request.max_message_size.into()),
    )
}

fn lookup_error(request: &StreamRequest, e: &GetStreamByNameError) -> TransportError {
    let why = match e.kind() {
        GetStreamByNameErrorKind::Request if crate::transport::is_no_responders(e) => {
            "the server has no JetStream".to_string()
        }
        _ => e.to_string(),
    };
    crate::transport::request_failure(
        e,
        format!(
            "allow_create_stream: could not tell whether a stream captures `{}`: {why}",
            request.subject
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_carries_every_limit_and_only_the_requested_subject() {
        let request = StreamRequest {
            name: "nats-sink-0123456789abcdef".into(),
            subject: "orders.*".into(),
            max_bytes: 1 << 20,
            max_messages: 100,
            max_messages_per_subject: 10,
            max_consumers: 3,
            max_message_size: 4096,
        };
        let c = config(&request);
        assert_eq!(c.name, request.name);
        assert_eq!(c.subjects, vec!["orders.*".to_string()]);
        assert_eq!(
            (
                c.max_bytes,
                c.max_messages,
                c.max_messages_per_subject,
                c.max_consumers,
                c.max_message_size
            ),
            (1 << 20, 100, 10, 3, 4096)
        );
        let text = describe(&StreamRequest {
            max_messages: -1,
            ..request
        });
        assert!(
            text.contains("max_bytes 1048576, max_messages no limit"),
            "{text}"
        );
    }
}
