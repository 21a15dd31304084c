//! The JetStream pipeline: up to `max-in-flight` messages await their acks while more are
//! sent; a failure that can pass is sent again after a backoff, once the client has
//! reconnected, until the `delivery` budget of that message is spent ([`super::retry`]
//! decides; this file drives async-nats).

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use async_nats::jetstream::context::{PublishError, PublishErrorKind};
use async_nats::jetstream::publish::PublishAck;
use futures::stream::FuturesOrdered;
use futures::StreamExt;

use super::batch::Outgoing;
use super::retry::Plan;
use super::wording::{connection_error, is_permission_violation, jetstream_error};
use super::{millis, NatsConnection};
use crate::bindings::transport::{Delivery, TransportError};

pub(super) type PendingAck = Pin<Box<dyn Future<Output = Result<PublishAck, PublishError>> + Send>>;

/// What one failed send or ack calls for.
enum SendFailure {
    /// May pass: send the message again, within the budget. The text is the cause.
    Retry(String),
    /// Cannot pass: report it.
    Fatal(TransportError),
}

/// A run of failures that could pass, from the first until every message is acked again:
/// what the log says. The budget is per message, in [`super::retry::Retries`].
pub(super) struct Episode {
    started: Instant,
    /// Resend rounds so far.
    rounds: u32,
    cause: String,
}

/// The wait before resend number `attempt` (1 for the first): doubled each time up to the
/// maximum, then drawn from its upper half so that many sinks do not resend in step.
pub fn backoff(delivery: &Delivery, attempt: u32) -> Duration {
    let doubled = u64::from(delivery.initial_backoff_ms)
        .saturating_mul(1u64 << attempt.saturating_sub(1).min(32));
    let ceiling = doubled.min(delivery.max_backoff_ms.into());
    Duration::from_millis(ceiling / 2 + fastrand::u64(0..=ceiling - ceiling / 2))
}

impl NatsConnection {
    pub(super) async fn publish_jetstream(
        &mut self,
        message: Outgoing,
    ) -> Result<(), TransportError> {
        // Backpressure: the oldest ack first, so memory stays bounded.
        while self.in_flight.len() >= self.delivery.max_in_flight as usize {
            self.settle_oldest().await?;
        }
        // Order per key: while an earlier message on this subject is unconfirmed (awaiting
        // its ack, or queued for a resend), this one waits. Each round takes in the oldest
        // ack or recovers every failed message, so the wait ends within the retry budget.
        while self
            .unconfirmed_keys
            .as_ref()
            .is_some_and(|keys| keys.contains(message.subject.as_str()))
        {
            self.settle_oldest().await?;
        }
        if let Some(keys) = &mut self.unconfirmed_keys {
            keys.insert(message.subject.to_string());
        }
        match self.send_jetstream(message).await {
            Ok(()) => Ok(()),
            Err((SendFailure::Fatal(e), message)) => {
                self.since_flush.refused(message.position);
                Err(e)
            }
            Err((SendFailure::Retry(cause), message)) => {
                self.note_failure(&message, cause);
                self.resend.push_back(message);
                self.recover().await
            }
        }
    }
    /// Send one JetStream message and queue its ack; on failure, hand the message back.
    async fn send_jetstream(&mut self, message: Outgoing) -> Result<(), (SendFailure, Outgoing)> {
        let wait = millis(self.delivery.ack_timeout_ms);
        self.retries.sent(message.position);
        let (subject, payload) = (message.subject.clone(), message.payload.clone());
        let sent = match &message.headers {
            Some(h) => {
                tokio::time::timeout(
                    wait,
                    self.jetstream
                        .publish_with_headers(subject, h.clone(), payload),
                )
                .await
            }
            None => tokio::time::timeout(wait, self.jetstream.publish(subject, payload)).await,
        };
        match sent {
            Err(_) => Err((
                SendFailure::Retry(format!(
                    "the connection took no message for {} ms (it is down or reconnecting)",
                    wait.as_millis()
                )),
                message,
            )),
            Ok(Err(e)) => Err((self.classify(&message.subject, e), message)),
            Ok(Ok(ack)) => {
                self.in_flight
                    .push_back(std::future::IntoFuture::into_future(ack));
                self.awaiting.push_back(message);
                Ok(())
            }
        }
    }

    /// Whether a JetStream send or ack failure can pass.
    fn classify(&self, subject: &str, error: PublishError) -> SendFailure {
        let refused = |e: &PublishError| {
            SendFailure::Fatal(TransportError::publish(format!(
                "JetStream refused a message on `{subject}`: {e}"
            )))
        };
        match error.kind() {
            PublishErrorKind::TimedOut => {
                // A user without permission gets no ack, only the server's error.
                let quoted = format!("\"{subject}\"");
                let denied = self
                    .events
                    .take_server_error(|e| is_permission_violation(e, &quoted));
                match denied {
                    Some(e) => SendFailure::Fatal(TransportError::publish(format!(
                        "the server refused a message on `{subject}`: {e}"
                    ))),
                    None => SendFailure::Retry(format!(
                        "no ack within ack_timeout_ms ({} ms)",
                        self.delivery.ack_timeout_ms
                    )),
                }
            }
            PublishErrorKind::BrokenPipe => {
                SendFailure::Retry("the connection closed before the ack arrived".into())
            }
            PublishErrorKind::StreamNotFound => SendFailure::Retry(
                "no stream answered (a stream leader election, or a server restarting)".into(),
            ),
            PublishErrorKind::MaxAckPending => {
                SendFailure::Retry("too many acks outstanding".into())
            }
            PublishErrorKind::Other if is_transient(&error) => {
                SendFailure::Retry(format!("JetStream is unavailable for a moment: {error}"))
            }
            _ => refused(&error),
        }
    }

    /// `message` failed in a way that can pass: its time budget starts, if it has not.
    fn note_failure(&mut self, message: &Outgoing, cause: String) {
        tracing::trace!(%cause, "delivery failure that can pass");
        let now = Instant::now();
        self.retries.failed(message.position, now);
        self.episode
            .get_or_insert_with(|| Episode {
                started: now,
                rounds: 0,
                cause: String::new(),
            })
            .cause = cause;
    }

    /// The outcome of one ack: a message to send again is queued, not an error.
    fn on_ack(
        &mut self,
        message: Outgoing,
        result: Result<PublishAck, PublishError>,
    ) -> Result<(), TransportError> {
        let Err(error) = result else {
            self.since_flush.confirmed += 1;
            self.retries.confirmed(message.position);
            if let Some(keys) = &mut self.unconfirmed_keys {
                keys.remove(message.subject.as_str());
            }
            return Ok(());
        };
        match self.classify(&message.subject, error) {
            SendFailure::Fatal(e) => {
                self.since_flush.refused(message.position);
                Err(e)
            }
            SendFailure::Retry(cause) => {
                self.note_failure(&message, cause);
                self.resend.push_back(message);
                Ok(())
            }
        }
    }

    /// Take in the oldest ack; or, once the connection has dropped, queue every message still
    /// awaiting one for a resend, since replies to the old connection never arrive (a stream
    /// drops the copies it already holds by their message id).
    async fn take_next_ack(&mut self) -> Result<(), TransportError> {
        let seen = self.drops_seen;
        let events = self.events.clone();
        let dropped = events.wait_for(|log| (log.drops() > seen).then_some(()));
        let next = tokio::select! {
            // Acks that already arrived count before a drop that came after them.
            biased;
            next = self.in_flight.next() => next,
            () = dropped => {
                self.drops_seen = self.events.drops();
                self.in_flight = FuturesOrdered::new();
                for message in std::mem::take(&mut self.awaiting) {
                    self.note_failure(&message, "the connection dropped while acks were awaited".into());
                    self.resend.push_back(message);
                }
                return Ok(());
            }
        };
        match (next, self.awaiting.pop_front()) {
            (Some(result), Some(message)) => self.on_ack(message, result),
            _ => Ok(()),
        }
    }

    /// Wait for the oldest ack; a failure that can pass starts recovery.
    pub(super) async fn settle_oldest(&mut self) -> Result<(), TransportError> {
        self.take_next_ack().await?;
        if self.resend.is_empty() {
            Ok(())
        } else {
            self.recover().await
        }
    }

    /// Send again every message whose send or ack failed, after a backoff and once the client
    /// is connected, until every message is acked or the budget is spent.
    async fn recover(&mut self) -> Result<(), TransportError> {
        loop {
            // The acks still outstanding say which other messages need another send.
            while !self.in_flight.is_empty() {
                self.take_next_ack().await?;
            }
            if self.resend.is_empty() {
                if let Some(episode) = self.episode.take() {
                    tracing::info!(
                        cause = %episode.cause,
                        rounds = episode.rounds,
                        elapsed_ms = episode.started.elapsed().as_millis() as u64,
                        "delivery recovered"
                    );
                }
                return Ok(());
            }
            let positions = self.resend.iter().map(|m| m.position);
            let (attempt, within) = match self.retries.plan(positions, Instant::now()) {
                Plan::GiveUp { sends, elapsed, .. } => return Err(self.give_up(sends, elapsed)),
                Plan::Resend { attempt, within } => (attempt, within),
                // Not for a queue that holds messages; resend them within the whole budget.
                Plan::Nothing => (1, millis(self.delivery.max_elapsed_ms)),
            };
            let resume_by = Instant::now() + within;
            tokio::time::sleep(backoff(&self.delivery, attempt).min(within)).await;
            // Sending into a connection that is down would only fill the client's buffer.
            let remaining = resume_by.saturating_duration_since(Instant::now());
            if tokio::time::timeout(remaining, self.events.connected())
                .await
                .is_err()
            {
                let positions = self.resend.iter().map(|m| m.position);
                let (sends, elapsed) = match self.retries.plan(positions, Instant::now()) {
                    Plan::GiveUp { sends, elapsed, .. } => (sends, elapsed),
                    _ => (attempt, Duration::ZERO),
                };
                return Err(self.give_up(sends, elapsed));
            }
            if let Some(episode) = &mut self.episode {
                episode.rounds += 1;
            }
            let mut queue = std::mem::take(&mut self.resend).into_iter();
            tracing::debug!(messages = queue.len(), attempt = attempt + 1, cause = %self.episode.as_ref().map_or("", |e| e.cause.as_str()), "resending");
            while let Some(message) = queue.next() {
                self.stats.resent += 1;
                match self.send_jetstream(message).await {
                    Ok(()) => {}
                    Err((SendFailure::Fatal(e), message)) => {
                        self.since_flush.refused(message.position);
                        return Err(e);
                    }
                    Err((SendFailure::Retry(cause), message)) => {
                        self.note_failure(&message, cause);
                        self.resend.push_back(message);
                        self.resend.extend(queue);
                        break;
                    }
                }
            }
        }
    }

    /// After a refusal, take in every ack still in flight, sending nothing again: they say
    /// which other messages are stored. Each ack waits at most `ack_timeout_ms` (they wait
    /// together), so this ends within about that.
    pub(super) async fn take_remaining_acks(&mut self) {
        while let Some(result) = self.in_flight.next().await {
            let Some(message) = self.awaiting.pop_front() else {
                break;
            };
            match result {
                Ok(_) => self.since_flush.confirmed += 1,
                Err(error) => match self.classify(&message.subject, error) {
                    SendFailure::Fatal(_) => self.since_flush.refused(message.position),
                    SendFailure::Retry(_) => self.since_flush.not_confirmed(message.position),
                },
            }
        }
        let left = self.awaiting.drain(..).chain(self.resend.drain(..));
        for position in left.map(|message| message.position).collect::<Vec<_>>() {
            self.since_flush.not_confirmed(position);
        }
    }

    /// The error once a message's budget is spent (`attempts` sends of it, `elapsed` since its
    /// first failure), naming what was tried and why it failed.
    fn give_up(&mut self, attempts: u32, elapsed: Duration) -> TransportError {
        let unconfirmed = self.resend.len() + self.in_flight.len();
        let cause = self
            .episode
            .take()
            .map_or_else(|| String::from("unknown"), |e| e.cause);
        let message = format!(
            "gave up on {unconfirmed} unconfirmed JetStream message(s) after {attempts} send(s) over {} ms (retry budget: {} sends, {} ms); last failure: {cause}",
            elapsed.as_millis(),
            self.delivery.max_attempts,
            self.delivery.max_elapsed_ms,
        );
        self.forget_unconfirmed();
        if self.events.is_connected() {
            TransportError::timeout(message)
        } else {
            connection_error(format!("the server stayed unreachable: {message}"))
        }
    }
}

/// True for JetStream errors that mean "not now" rather than "no": 503s and cluster states.
fn is_transient(error: &PublishError) -> bool {
    use async_nats::jetstream::ErrorCode;
    let Some(js) = jetstream_error(error) else {
        return false;
    };
    js.code() == 503
        || [
            ErrorCode::CLUSTER_NOT_AVAILABLE,
            ErrorCode::CLUSTER_NOT_LEADER,
            ErrorCode::CLUSTER_NOT_ACTIVE,
        ]
        .contains(&js.error_code())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(initial: u32, max: u32) -> Delivery {
        Delivery {
            ack_timeout_ms: 1000,
            max_in_flight: 16,
            max_attempts: 10,
            max_elapsed_ms: 60_000,
            initial_backoff_ms: initial,
            max_backoff_ms: max,
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_maximum_with_jitter_in_the_upper_half() {
        let d = delivery(100, 2_000);
        for _ in 0..200 {
            for (attempt, ceiling) in [
                (1, 100),
                (2, 200),
                (3, 400),
                (5, 1_600),
                (6, 2_000),
                (40, 2_000),
            ] {
                let wait = backoff(&d, attempt).as_millis() as u64;
                assert!(
                    (ceiling / 2..=ceiling).contains(&wait),
                    "attempt {attempt}: {wait} ms outside {}..={ceiling}",
                    ceiling / 2
                );
            }
        }
        // Jitter: not every wait is the same.
        let waits: std::collections::HashSet<_> = (0..50).map(|_| backoff(&d, 4)).collect();
        assert!(waits.len() > 1);
        // The smallest settings still give a wait, never a panic or an overflow.
        assert!(backoff(&delivery(1, 1), u32::MAX) <= Duration::from_millis(1));
        assert!(backoff(&delivery(60_000, 600_000), u32::MAX) <= Duration::from_secs(600));
    }
}
