//! Core NATS: publish, and the flush that confirms core messages by an echo through the
//! server, then waits out the server's error reports for subjects new to the connection.

use std::time::Duration;

use futures::StreamExt;

use super::batch::Outgoing;
use super::routes::{is_lookup_refusal, Clearance, MAX_CACHED_ROUTES};
use super::shared::Listeners;
use super::wording::connection_error;
use super::{millis, NatsConnection};
use crate::bindings::transport::TransportError;

/// How long the first flush of a core subject waits, after the echo, for the server's error
/// reports to reach the event callback.
const ERROR_REPORT_GRACE: Duration = Duration::from_millis(2);

/// Events on the (maybe shared) client since a sink's last flush past which it cannot tell
/// none of its own was lost: async-nats queues events for the callback in 128 slots and drops
/// what does not fit (`try_send`). A lost event implies 128 queued at once, all handed on
/// after this sink's last flush; half of that leaves room for ones still queued at the check.
const MAX_REPORTS_PER_FLUSH: u64 = 64;

/// Waits of `ERROR_REPORT_GRACE` for the event callback to go quiet before a flush's check.
const SETTLE_ROUNDS: usize = 25;

/// The client's event count once its callback has gone quiet (or after `SETTLE_ROUNDS`
/// waits), if it moved since `since`: events still queued for the callback count now.
async fn settled_reports(listeners: &Listeners, since: u64) -> u64 {
    let mut seen = listeners.reports();
    if seen == since {
        return seen;
    }
    for _ in 0..SETTLE_ROUNDS {
        tokio::time::sleep(ERROR_REPORT_GRACE).await;
        let now = listeners.reports();
        if now == seen {
            break;
        }
        seen = now;
    }
    seen
}

impl NatsConnection {
    pub(super) async fn publish_core(&mut self, message: Outgoing) -> Result<(), TransportError> {
        let wait = millis(self.delivery.ack_timeout_ms);
        let size = message.payload.len();
        let subject = message.subject.clone();
        let sent = match message.headers {
            Some(h) => {
                tokio::time::timeout(
                    wait,
                    self.client
                        .publish_with_headers(message.subject, h, message.payload),
                )
                .await
            }
            None => {
                tokio::time::timeout(wait, self.client.publish(message.subject, message.payload))
                    .await
            }
        };
        match sent {
            // The client buffers while it reconnects; a full buffer means the server is gone.
            // The core message was not sent: only a replay can deliver it.
            Err(_) => Err(TransportError::timeout(format!(
                "could not hand a message on `{subject}` to the connection within ack_timeout_ms ({} ms): the server is unreachable",
                wait.as_millis()
            ))
            .core_in_doubt_if(true)),
            Ok(Err(e)) => Err(TransportError::publish(format!("{e} ({size} bytes)"))),
            Ok(Ok(())) => {
                self.unconfirmed_core += 1;
                Ok(())
            }
        }
    }

    pub(super) async fn confirm_core(&mut self) -> Result<(), TransportError> {
        if self.unconfirmed_core > 0 {
            let wait = millis(self.delivery.ack_timeout_ms);
            let echo_subject = self.echo_subject.clone();
            let (client, echo, events) = (&self.client, &mut self.echo, &self.events);
            let round_trip = async {
                client
                    .publish(echo_subject.clone(), Default::default())
                    .await
                    .map_err(|e| connection_error(format!("flush: {e}")))?;
                client
                    .flush()
                    .await
                    .map_err(|e| connection_error(format!("flush: {e}")))?;
                // Either our echo comes back, or (for a user who may not publish to inboxes)
                // the server refuses it. Both come after the server processed every earlier
                // publish, and its errors reach the event callback in order.
                let refused = events.server_error(|e| e.contains(&echo_subject));
                tokio::select! {
                    received = echo.next() => received.map(|_| ()).ok_or_else(|| connection_error("flush: the connection closed")),
                    _ = refused => Ok(()),
                }
            };
            match tokio::time::timeout(wait, round_trip).await {
                Err(_) => {
                    return Err(TransportError::timeout(format!(
                    "the server did not confirm {} core message(s) within ack_timeout_ms ({} ms)",
                    self.unconfirmed_core,
                    wait.as_millis()
                )))
                }
                Ok(result) => result?,
            }
            // The echo and the event callback travel separately; let the callback catch up
            // with errors the connection read before the echo. A subject new to this
            // connection gets a longer wait: that is when a refusal shows.
            for _ in 0..8 {
                tokio::task::yield_now().await;
            }
            if self.grace_due {
                tokio::time::sleep(ERROR_REPORT_GRACE).await;
            }
        }
        // Read before the log is emptied: an event in between is counted again next time.
        let reports = settled_reports(&self.shared.listeners, self.reports_seen).await;
        let burst = reports.saturating_sub(self.reports_seen);
        self.reports_seen = reports;
        let (errors, disconnects, overflowed) = self.events.take_reports();
        // A refused route lookup is the lookup's to handle; one left over (two lookups on a
        // client, each told of both refusals) is not about this flush's rows.
        let mut errors = errors.into_iter().filter(|e| !is_lookup_refusal(e));
        if self.events.owned() > MAX_CACHED_ROUTES {
            // Every refusal due before this flush has arrived: claim only what is cached.
            let subjects: Vec<String> = self.subjects.keys().cloned().collect();
            self.events
                .own_only(subjects.iter().chain(std::iter::once(&self.echo_subject)));
        }
        if disconnects > 0 {
            // A new connection may carry other permissions: every subject is cleared again.
            for known in self.subjects.values_mut() {
                known.clearance = Clearance::Unseen;
            }
        }
        if let Some(first) = errors.next() {
            return Err(TransportError::publish(format!(
                "the server reported: {first}"
            )));
        }
        // Only a subject not yet cleared can be refused (permissions hold for a connection,
        // and a reconnect makes every subject unseen again): a sink with none in this flush
        // has no refusal to lose.
        if burst >= MAX_REPORTS_PER_FLUSH && self.grace_due {
            return Err(TransportError::publish(format!(
                "the connection reported {burst} server errors or state changes since this sink's last flush (a sink sharing it may be refused); the NATS client passes on at most 128 at once and drops the rest, so this flush cannot tell none was a refusal of this sink's messages"
            )));
        }
        if overflowed {
            return Err(TransportError::publish(
                "the server reported more errors since the last flush than are kept; this flush cannot tell they were not about this sink's messages",
            ));
        }
        if disconnects > 0 && self.unconfirmed_core > 0 {
            return Err(connection_error(
                "the connection dropped since the last flush; core NATS messages sent before it may be lost (core NATS has no acks: replay them, or use a JetStream stream)",
            ));
        }
        self.settle_clearance(Clearance::Cleared);
        Ok(())
    }
}
