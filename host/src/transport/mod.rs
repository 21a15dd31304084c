//! The transport the guest imports, over async-nats: connect, publish, and a flush that
//! returns only when every message since the previous flush is confirmed.
//!
//! JetStream messages are pipelined: up to `max-in-flight` await their acks while more are
//! sent, and a writer beyond that waits for the oldest ack. A message whose send or ack fails
//! in a way that can pass (no ack in time, the connection dropped, no stream leader for a
//! moment) is kept and sent again after a backoff, once the client has reconnected, until the
//! `delivery` budget is spent. A failure that cannot pass (permission, max_payload, the
//! stream's limits) ends the call at once. Nothing is dropped without an error.

mod batch;
mod connect;
mod core;
mod events;
mod jetstream;
mod refusal;
mod retry;
mod routes;
mod shared;
mod stats;
mod wording;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use futures::stream::FuturesOrdered;

use crate::bindings::transport::{Batch, Delivery, TransportError};
use batch::Outgoing;
pub use batch::{unpack, OutgoingMessage};
use events::EventLog;
use jetstream::{Episode, PendingAck};
use routes::{Clearance, KnownSubject};

pub use jetstream::backoff;
pub use refusal::Refusal;
pub use routes::Route;
pub use shared::SharedClients;
pub use stats::TransportStats;
pub use wording::list_servers;
pub(crate) use wording::{
    is_no_responders, is_permission_violation, jetstream_error, request_failure,
};

/// One sink's connection: its own ordering, flush, acks and counters, over a NATS client it
/// may share with sinks of the same connect config.
pub struct NatsConnection {
    client: async_nats::Client,
    /// Held so the shared client stays open while this sink is; the last sink closes it.
    shared: Arc<shared::SharedClient>,
    /// The shared client's event count at the last flush (see [`shared::Listeners::reports`]).
    reports_seen: u64,
    jetstream: async_nats::jetstream::Context,
    subjects: HashMap<String, KnownSubject>,
    /// Core subjects published since the last flush that are not yet cleared.
    uncleared: Vec<String>,
    /// A core subject new to the connection was published since the last flush.
    grace_due: bool,
    /// Acks awaited, oldest first, and the messages they confirm, in the same order.
    in_flight: FuturesOrdered<PendingAck>,
    awaiting: VecDeque<Outgoing>,
    /// Disconnects already accounted for: after another, awaited acks cannot arrive.
    drops_seen: u64,
    /// JetStream messages to send again, in the order they were first sent.
    resend: VecDeque<Outgoing>,
    episode: Option<Episode>,
    /// Each unconfirmed JetStream message's sends and first failure, against `delivery`.
    retries: retry::Retries,
    /// Core messages published since the last flush.
    unconfirmed_core: u64,
    /// What became of the messages since the last flush, to say after a refusal.
    since_flush: refusal::SinceFlush,
    events: Arc<EventLog>,
    /// Inbox that core flushes echo through; its subscriber sees our echo after the server
    /// has processed every earlier publish on this connection.
    echo_subject: String,
    echo: async_nats::Subscriber,
    delivery: Delivery,
    flush_timeout: Duration,
    stats: TransportStats,
    /// An upsert sink's bucket: its key subjects may be published, and each key's messages
    /// are kept in order (one unconfirmed message per subject at a time).
    kv_bucket: Option<String>,
    /// With a bucket: the subjects with a message sent (or to be resent) and not yet acked.
    /// A message on one of them waits until it is acked, so no resend can overtake a later
    /// value of its key.
    unconfirmed_keys: Option<HashSet<String>>,
}

fn millis(ms: u32) -> Duration {
    Duration::from_millis(ms.into())
}

impl NatsConnection {
    /// The connection's counters so far.
    pub fn stats(&self) -> TransportStats {
        self.stats
    }

    /// The largest message the server now connected to takes (payload and headers).
    pub fn max_payload(&self) -> u64 {
        self.client.server_info().max_payload as u64
    }

    /// The client, for callers that need more of the server than publishing (health checks).
    pub(crate) fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// The JetStream context publishes go through.
    pub(crate) fn jetstream(&self) -> &async_nats::jetstream::Context {
        &self.jetstream
    }

    /// Return once the server reports an error that `matches`, removing it.
    pub(crate) async fn server_error(&self, matches: impl Fn(&str) -> bool) -> String {
        self.events.server_error(matches).await
    }

    /// Check the guest's batch, then send its messages, each by its subject's route; after
    /// an error nothing since the last flush counts as confirmed.
    pub async fn publish(&mut self, batch: Batch) -> Result<(), TransportError> {
        let bucket = self.kv_bucket.clone();
        self.publish_messages(unpack(batch, bucket.as_deref())?)
            .await
    }

    /// Send checked messages, each by its subject's route; after an error nothing since the
    /// last flush counts as confirmed.
    pub async fn publish_messages(
        &mut self,
        messages: Vec<OutgoingMessage>,
    ) -> Result<(), TransportError> {
        self.stats.refusal = None;
        let result = self.publish_all(messages).await;
        if result.is_err() {
            let core_unconfirmed = self.unconfirmed_core > 0;
            let result = self.account_for_refusal(result).await;
            self.forget_unconfirmed();
            return result.map_err(|e| e.core_in_doubt_if(core_unconfirmed));
        }
        result
    }

    async fn publish_all(&mut self, messages: Vec<OutgoingMessage>) -> Result<(), TransportError> {
        for mut outgoing in messages.into_iter().map(Outgoing::from) {
            let size = outgoing.payload.len() as u64;
            let subject = outgoing.subject.as_str();
            let is_jetstream = |route: &Route| matches!(route, Route::JetStream { .. });
            let (jetstream, clearance) = match self.subjects.get(subject) {
                Some(known) => (is_jetstream(&known.route), known.clearance),
                None => (is_jetstream(&self.route(subject).await?), Clearance::Unseen),
            };
            outgoing.position = self.since_flush.hand(jetstream);
            if jetstream {
                self.publish_jetstream(outgoing).await?;
            } else {
                if clearance == Clearance::Unseen {
                    self.list_for_clearance(subject.to_string());
                }
                self.publish_core(outgoing).await?;
            }
            self.stats.messages += 1;
            self.stats.payload_bytes += size;
        }
        Ok(())
    }

    /// After an error, nothing since the last flush counts as confirmed; the caller replays.
    fn forget_unconfirmed(&mut self) {
        self.in_flight = FuturesOrdered::new();
        self.awaiting.clear();
        self.resend.clear();
        if let Some(keys) = &mut self.unconfirmed_keys {
            keys.clear();
        }
        self.episode = None;
        self.retries.forget_all();
        self.unconfirmed_core = 0;
        self.since_flush = refusal::SinceFlush::default();
        self.settle_clearance(Clearance::Unseen);
    }

    /// After a call failed: if JetStream refused a message, take in the acks still in flight
    /// and say which messages since the last flush are confirmed, in the error and in
    /// [`TransportStats::refusal`]. Other failures pass unchanged.
    async fn account_for_refusal(
        &mut self,
        result: Result<(), TransportError>,
    ) -> Result<(), TransportError> {
        let Err(TransportError::Publish(cause)) = &result else {
            return result;
        };
        if self.since_flush.first_refused.is_none() {
            return result;
        }
        self.take_remaining_acks().await;
        let Some(refusal) = self.since_flush.refusal() else {
            return result;
        };
        self.stats.refusal = Some(refusal);
        Err(TransportError::publish(format!(
            "{}; {}",
            cause.message,
            refusal.describe()
        )))
    }

    /// Confirm everything since the last flush: all JetStream acks (resending what can be),
    /// then a round trip for core messages, then no server error or disconnect in between.
    pub async fn flush(&mut self) -> Result<(), TransportError> {
        self.stats.refusal = None;
        // Core NATS acks nothing: a lost connection or a silent server leaves these in doubt.
        let core_unconfirmed = self.unconfirmed_core > 0;
        let limit = self.flush_timeout;
        let result = match tokio::time::timeout(limit, self.confirm_all()).await {
            Ok(result) => result,
            Err(_) => Err(TransportError::timeout(format!(
                "the flush did not finish within flush_timeout_ms ({} ms); {} JetStream message(s) unconfirmed",
                limit.as_millis(),
                self.in_flight.len() + self.resend.len()
            ))),
        };
        match result {
            Ok(()) => {
                self.stats.flushes += 1;
                self.stats.refusal = None;
                self.since_flush = refusal::SinceFlush::default();
                // Positions start again from 0 after a flush, so no record may outlive it.
                self.retries.forget_all();
                Ok(())
            }
            Err(_) => {
                let result = self.account_for_refusal(result).await;
                self.forget_unconfirmed();
                result.map_err(|e| e.core_in_doubt_if(core_unconfirmed))
            }
        }
    }

    async fn confirm_all(&mut self) -> Result<(), TransportError> {
        while !self.in_flight.is_empty() || !self.resend.is_empty() {
            self.settle_oldest().await?;
        }
        let result = self.confirm_core().await;
        self.unconfirmed_core = 0;
        result
    }
}
