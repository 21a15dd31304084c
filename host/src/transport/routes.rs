//! The route cache: whether a stream captures a subject (asked of JetStream once per subject),
//! and whether the server has had its chance to refuse core messages on it.

use async_nats::jetstream::context::{GetStreamByNameError, GetStreamByNameErrorKind};

use super::wording::{is_no_responders, is_permission_violation, is_request_timeout};
use super::NatsConnection;
use crate::bindings::transport::TransportError;

/// How messages on one subject are confirmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// No stream captures the subject: core publish, confirmed by a server round trip.
    Core,
    /// A stream captures the subject: JetStream publish, confirmed by its ack.
    JetStream {
        /// The stream's name.
        stream: String,
    },
}

/// What one connection knows of a subject.
pub(super) struct KnownSubject {
    pub(super) route: Route,
    pub(super) clearance: Clearance,
}

/// Whether the server has had its chance to refuse core messages on a subject. It reports a
/// refusal (a missing permission) as an error event, which can trail the flush's echo; the
/// first flush after a subject's first message, on each connection, waits it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Clearance {
    /// No core message since the connection (re)connected, or the last attempt failed.
    Unseen,
    /// Published since the last flush, which will wait for error reports.
    Listed,
    /// A flush waited for error reports and saw none: later flushes need only the echo.
    Cleared,
}

/// Subjects whose route is remembered at once.
pub(super) const MAX_CACHED_ROUTES: usize = 10_000;

/// Where `stream_by_subject` sends its request (the default JetStream API prefix, which is
/// the one the sink's context uses).
pub(super) const LOOKUP_SUBJECT: &str = "$JS.API.STREAM.NAMES";

/// Whether the server's error report `error` refuses the route lookup's own request: that
/// exact subject, as the server quotes it (rows may go to other `$JS.API…` subjects).
pub(super) fn is_lookup_refusal(error: &str) -> bool {
    const QUOTED: &str = "\"$JS.API.STREAM.NAMES\"";
    debug_assert_eq!(QUOTED.trim_matches('"'), LOOKUP_SUBJECT);
    is_permission_violation(error, QUOTED)
}

impl NatsConnection {
    /// Where messages on `subject` go, asked of JetStream once per subject.
    pub(crate) async fn route(&mut self, subject: &str) -> Result<Route, TransportError> {
        if let Some(known) = self.subjects.get(subject) {
            return Ok(known.route.clone());
        }
        // From the first message on, the server's refusals naming the subject are ours.
        self.events.own(subject);
        let lookup = self.jetstream.stream_by_subject(subject);
        // A user who may not publish to the JetStream API gets no reply, only a permission
        // error from the server: watch for it rather than wait out the request timeout. Only
        // a refusal of the very subject the lookup sends to is ours (a neighbour on a shared
        // client may be refused too).
        let _claim = self.events.look_up(LOOKUP_SUBJECT);
        let denied = self.events.server_error(is_lookup_refusal);
        let found = tokio::select! {
            found = lookup => found,
            _ = denied => {
                tracing::debug!(subject, "no permission to use JetStream: core path");
                Err(GetStreamByNameError::new(GetStreamByNameErrorKind::NotFound))
            }
        };
        let route = match found {
            Ok(stream) => Route::JetStream { stream },
            Err(e) => match e.kind() {
                GetStreamByNameErrorKind::NotFound => Route::Core,
                // No JetStream on the server: the request has no responders.
                GetStreamByNameErrorKind::Request if is_no_responders(&e) => Route::Core,
                GetStreamByNameErrorKind::Request if is_request_timeout(&e) => {
                    // Never guessed to be core: on a leaf node or in a mixed cluster a slow
                    // JetStream elsewhere may hold a stream for the subject.
                    return Err(TransportError::timeout(format!(
                        "could not tell whether a JetStream stream captures `{subject}`: no answer to the lookup on {LOOKUP_SUBJECT} within ack_timeout_ms ({e}); a JetStream that is slow or electing a leader, or something that subscribes to it without answering (a subscriber on `>` on a server without JetStream)"
                    )));
                }
                _ => {
                    return Err(TransportError::publish(format!(
                        "could not tell whether a JetStream stream captures `{subject}`: {e}"
                    )))
                }
            },
        };
        tracing::debug!(subject, ?route, "delivery route");
        // Subjects filled from rows can be many; a full cache starts over rather than grow.
        // The subjects published since the last flush stay listed and claimed: their
        // refusals may still come, and are this sink's (a neighbour on a shared client may
        // claim them too). The rest of the claims go; the flush trims them again.
        if self.subjects.len() >= MAX_CACHED_ROUTES {
            self.subjects.clear();
            let subject = subject.to_string();
            self.events
                .own_only(self.uncleared.iter().chain([&self.echo_subject, &subject]));
        }
        let known = KnownSubject {
            route: route.clone(),
            clearance: Clearance::Unseen,
        };
        self.subjects.insert(subject.to_string(), known);
        Ok(route)
    }

    /// Note a core subject whose next flush must wait for the server's error reports.
    pub(super) fn list_for_clearance(&mut self, subject: String) {
        if let Some(known) = self.subjects.get_mut(&subject) {
            known.clearance = Clearance::Listed;
        }
        self.grace_due = true;
        self.uncleared.push(subject);
    }

    /// Move the subjects listed since the last flush to `to`: `Cleared` once a flush saw no
    /// error for them, `Unseen` when it failed.
    pub(super) fn settle_clearance(&mut self, to: Clearance) {
        self.grace_due = false;
        for subject in self.uncleared.drain(..) {
            if let Some(known) = self.subjects.get_mut(&subject) {
                known.clearance = to;
            }
        }
    }
}
