//! `check`: what a sink with these options would meet (the server, the route its subject
//! takes, publish permission), found without leaving anything a subscriber or stream keeps.

use std::time::Duration;

use async_nats::jetstream::context::{PublishError, PublishErrorKind};
use async_nats::HeaderMap;
use nats_sink_rules::nats_names::kv_key_prefix;

use crate::bindings::encoder::Target;
use crate::bindings::transport::TransportError;
use crate::policy::Reach;
use crate::stream::StreamPlan;
use crate::transport::{is_permission_violation, jetstream_error, NatsConnection, Route};

/// A stream name can hold no `.`, so no stream matches this and the probe is never stored.
const PROBE_EXPECTED_STREAM: &str = "nats-sink.health-probe";
/// JetStream's "expected stream does not match": the probe reached the stream and was refused.
const EXPECTED_STREAM_MISMATCH: u64 = 10060;

/// Whether the connection may publish on the subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Permission {
    /// The probe reached the stream, or the server took a core message without complaint.
    Allowed,
    /// The server refused, in its words.
    Denied(String),
    /// Not probed, and why.
    Unknown(String),
    /// Probed, but the probe's outcome shows neither: a check that cannot say yes says no.
    ProbeFailed(String),
}

/// What `check` found: the server, the subject's route, whether publishing is allowed.
#[derive(Debug, Clone)]
pub struct Health {
    /// The server's name, as its INFO says.
    pub server_name: String,
    /// Its version.
    pub server_version: String,
    /// The largest message it takes.
    pub max_payload: usize,
    /// The subject checked (the template, when it is filled from rows).
    pub subject: String,
    /// `None` when the subject is filled from each row: each subject has its own route.
    pub route: Option<Route>,
    /// The stream's duplicate window, where JetStream captures the subject.
    pub duplicate_window: Option<Duration>,
    /// Whether the connection may publish on the subject.
    pub permission: Permission,
    /// With `allow_create_stream`: the stream that captures the subject, or the one a sink
    /// would create. `check` creates nothing.
    pub stream_plan: Option<StreamPlan>,
    /// An upsert sink's bucket and what it is on the server. `check` creates nothing.
    pub bucket: Option<(String, crate::kv::BucketState)>,
}

impl Health {
    /// One line: fine, or the first reason it is not.
    pub fn verdict(&self) -> Result<String, String> {
        if let Some((name, state)) = &self.bucket {
            return match (state, &self.permission) {
                (_, Permission::Denied(why)) => Err(format!(
                    "no permission to put into KV bucket `{name}`: {why}"
                )),
                (_, Permission::ProbeFailed(why)) => Err(format!(
                    "could not confirm permission to put into KV bucket `{name}`: {why}"
                )),
                (
                    crate::kv::BucketState::Missing {
                        create_with_history: None,
                    },
                    _,
                ) => Err(state.describe(name)),
                _ => Ok(format!("ready: {}", state.describe(name))),
            };
        }
        if let (Some(StreamPlan::Create(request)), Permission::Allowed | Permission::Unknown(_)) =
            (&self.stream_plan, &self.permission)
        {
            return Ok(format!(
                "ready: no stream captures `{}`; the sink will create {} before its first publish",
                request.subject,
                crate::stream::describe(request)
            ));
        }
        match &self.permission {
            Permission::Denied(why) => Err(format!(
                "no permission to publish on `{}`: {why}",
                self.subject
            )),
            Permission::ProbeFailed(why) => Err(format!(
                "could not confirm permission to publish on `{}`: {why}",
                self.subject
            )),
            Permission::Allowed | Permission::Unknown(_) => Ok(match &self.route {
                None => format!(
                    "ready: `{}` is filled from each row; each subject's route (a stream, acked, or core NATS) is looked up when first used",
                    self.subject
                ),
                Some(Route::JetStream { stream }) => format!(
                    "ready: `{}` is captured by stream {stream}; rows will be acked",
                    self.subject
                ),
                Some(Route::Core) => format!(
                    "ready: no stream captures `{}`; rows go out as core NATS (confirmed by a round trip, not stored)",
                    self.subject
                ),
            }),
        }
    }
}

/// Connect as a sink with `target` would, within `reach`, and look around.
pub async fn check(mut target: Target, reach: &Reach) -> Result<Health, TransportError> {
    reach.check(&target.connect)?;
    // Taken out so that connecting creates nothing; the plan is reported instead.
    let request = target.connect.create_stream.take();
    let kv = target.connect.kv.take();
    let mut connection = NatsConnection::connect(target.connect).await?;
    if let Some(kv) = kv {
        let state = crate::kv::state(connection.jetstream(), &kv).await?;
        // A put the bucket's stream must refuse (it expects another stream) shows whether
        // the user may put, and stores nothing.
        let probe = format!("{}nats-sink-check", kv_key_prefix(&kv.name));
        let permission = match state {
            crate::kv::BucketState::Exists { .. } => probe_jetstream(&connection, &probe).await,
            crate::kv::BucketState::Missing { .. } => {
                Permission::Unknown("not probed: the bucket does not exist".into())
            }
        };
        let info = connection.client().server_info();
        return Ok(Health {
            server_name: info.server_name,
            server_version: info.version,
            max_payload: info.max_payload,
            subject: target.subject,
            route: None,
            duplicate_window: None,
            permission,
            stream_plan: None,
            bucket: Some((kv.name, state)),
        });
    }
    let info = connection.client().server_info();
    let stream_plan = match &request {
        None => None,
        Some(request) => Some(crate::stream::plan(connection.jetstream(), request).await?),
    };
    let route = match target.subject_from_row {
        true => None,
        false => Some(connection.route(&target.subject).await?),
    };
    let (duplicate_window, permission) = match &route {
        None => (
            None,
            Permission::Unknown("not probed: the subject is filled from each row".into()),
        ),
        Some(Route::JetStream { stream }) => {
            let window = match connection.jetstream().get_stream(stream).await {
                Ok(mut s) => s.info().await.ok().map(|i| i.config.duplicate_window),
                Err(_) => None,
            };
            (window, probe_jetstream(&connection, &target.subject).await)
        }
        Some(Route::Core) => (
            None,
            Permission::Unknown(
                "not probed: a probe on a core subject would reach its subscribers".into(),
            ),
        ),
    };
    Ok(Health {
        server_name: info.server_name,
        server_version: info.version,
        max_payload: info.max_payload,
        subject: target.subject,
        route,
        duplicate_window,
        permission,
        stream_plan,
        bucket: None,
    })
}

/// Publish a message the stream must refuse (it expects another stream): the stream's refusal
/// shows the publish got through; the server's permission error shows it did not.
async fn probe_jetstream(connection: &NatsConnection, subject: &str) -> Permission {
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Expected-Stream", PROBE_EXPECTED_STREAM);
    let quoted = format!("\"{subject}\"");
    let denied = connection.server_error(|e| is_permission_violation(e, &quoted));
    let probe = async {
        let ack = connection
            .jetstream()
            .publish_with_headers(subject.to_string(), headers, Default::default())
            .await?;
        ack.await
    };
    tokio::select! {
        e = denied => Permission::Denied(e),
        outcome = probe => match outcome {
            Err(e) if e.kind() == PublishErrorKind::Other && is_expected_stream_mismatch(&e) => Permission::Allowed,
            Err(e) => Permission::ProbeFailed(format!("the probe failed: {e}")),
            Ok(_) => Permission::ProbeFailed("the stream stored the probe".into()),
        },
    }
}

fn is_expected_stream_mismatch(error: &PublishError) -> bool {
    jetstream_error(error).is_some_and(|js| js.error_code().0 == EXPECTED_STREAM_MISMATCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 16: `check` printed `probe failed: timed out`, then `ok: ready`.
    #[test]
    fn a_failed_probe_is_never_ok() {
        let health = |permission| Health {
            server_name: "n".into(),
            server_version: "2.9".into(),
            max_payload: 1 << 20,
            subject: "s".into(),
            route: Some(Route::JetStream { stream: "S".into() }),
            duplicate_window: None,
            permission,
            stream_plan: None,
            bucket: None,
        };
        let failed = health(Permission::ProbeFailed(
            "the probe failed: timed out".into(),
        ));
        assert_eq!(
            failed.verdict().unwrap_err(),
            "could not confirm permission to publish on `s`: the probe failed: timed out"
        );
        assert!(health(Permission::Denied("no".into())).verdict().is_err());
        assert!(health(Permission::Allowed).verdict().is_ok());
        assert!(health(Permission::Unknown("not probed".into()))
            .verdict()
            .is_ok());
    }
}
