//! NATS clients shared among sinks: sinks whose connect configs are the same (servers,
//! authentication and secrets, TLS, timeouts, delivery) use one client, opened by the first
//! and closed when the last lets go. Each sink keeps its own ordering, flush, acks, failure
//! latching and counters in its [`super::NatsConnection`]; only the socket is shared.
//!
//! The server reports refusals (a permission violation) as events on the connection, not per
//! publish; each event goes to the sinks it concerns: a violation naming a subject goes to the
//! sinks that publish there, and one that no sink claims (or any other report) to every sink,
//! so that nothing refused ever passes as confirmed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use async_nats::{Event, ServerError};

use super::events::EventLog;
use crate::bindings::transport::{ConnectConfig, TransportError};

/// One NATS client and the event logs of the sinks using it.
pub(crate) struct SharedClient {
    pub(super) client: async_nats::Client,
    pub(super) listeners: Arc<Listeners>,
}

/// The event logs of the sinks on one client, held weakly: a closed sink drops out.
#[derive(Default)]
pub(crate) struct Listeners {
    logs: Mutex<Vec<Weak<EventLog>>>,
}

impl Listeners {
    fn lock(&self) -> MutexGuard<'_, Vec<Weak<EventLog>>> {
        self.logs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new sink's log, told of every event from now on.
    pub(super) fn join(&self, log: &Arc<EventLog>) {
        let mut logs = self.lock();
        logs.retain(|log| log.strong_count() > 0);
        logs.push(Arc::downgrade(log));
    }

    /// Hand `event` to the logs it concerns.
    pub(super) fn record(&self, event: Event) {
        let logs: Vec<Arc<EventLog>> = self.lock().iter().filter_map(Weak::upgrade).collect();
        let subject = match &event {
            Event::ServerError(ServerError::Other(text)) => refused_subject(text),
            _ => None,
        };
        let claimants: Vec<&Arc<EventLog>> = match subject {
            Some(subject) => logs.iter().filter(|log| log.owns(subject)).collect(),
            None => Vec::new(),
        };
        if claimants.is_empty() {
            for log in &logs {
                log.record(event.clone());
            }
        } else {
            for log in claimants {
                log.record(event.clone());
            }
        }
    }
}

/// The subject a permission violation names (`... Publish to "subject"`), if it is one.
pub(crate) fn refused_subject(report: &str) -> Option<&str> {
    if !report.contains("Permissions Violation") {
        return None;
    }
    let start = report.find('"')? + 1;
    let len = report[start..].find('"')?;
    Some(&report[start..start + len])
}

/// What makes two sinks' clients interchangeable: the whole connect config but the stream a
/// sink may create (each sink creates its own, over the shared client). Compared as bindgen's
/// `Debug`, which writes every field (a field added to the WIT is part of the key with no
/// change here); held only in memory, never logged.
#[derive(Clone, PartialEq, Eq, Hash)]
struct ClientKey(String);

impl ClientKey {
    fn of(config: &ConnectConfig) -> ClientKey {
        let mut config = config.clone();
        config.create_stream = None;
        ClientKey(format!("{config:?}"))
    }
}

/// One key's client while any sink holds it; the async lock makes sinks opening at once wait
/// for the first one's connect instead of each opening their own.
type Slot = Arc<tokio::sync::Mutex<Weak<SharedClient>>>;

/// The clients of one runtime (and its clones), by connect config.
#[derive(Clone, Default)]
pub struct SharedClients {
    slots: Arc<Mutex<HashMap<ClientKey, Slot>>>,
}

impl std::fmt::Debug for SharedClients {
    // The keys hold secrets: only their number is shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let slots = self.slots.lock().map(|s| s.len()).unwrap_or(0);
        f.debug_struct("SharedClients")
            .field("configs", &slots)
            .finish()
    }
}

impl SharedClients {
    /// The client for `config`: the one a sink with the same config holds, or a new one.
    pub(crate) async fn client(
        &self,
        config: &ConnectConfig,
    ) -> Result<Arc<SharedClient>, TransportError> {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            // Forget configs no sink holds any more (nor is opening), so secrets do not linger.
            slots.retain(|_, slot| {
                Arc::strong_count(slot) > 1
                    || slot.try_lock().map_or(true, |held| held.strong_count() > 0)
            });
            slots.entry(ClientKey::of(config)).or_default().clone()
        };
        let mut held = slot.lock().await;
        if let Some(shared) = held.upgrade() {
            return Ok(shared);
        }
        let shared = Arc::new(SharedClient::connect(config).await?);
        *held = Arc::downgrade(&shared);
        Ok(shared)
    }

    /// How many clients are open now.
    pub fn open_clients(&self) -> usize {
        let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots
            .values()
            .filter(|slot| slot.try_lock().map_or(true, |held| held.strong_count() > 0))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_violation_names_its_subject_and_other_reports_name_none() {
        assert_eq!(
            refused_subject("Permissions Violation for Publish to \"orders.eu\""),
            Some("orders.eu")
        );
        assert_eq!(refused_subject("Authorization Violation"), None);
        assert_eq!(refused_subject("Permissions Violation for Publish"), None);
    }
}
