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
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use async_nats::{Event, ServerError};

use super::events::EventLog;
use super::wording::list_servers;
use crate::bindings::transport::{ConnectConfig, TransportError};

/// One NATS client and the event logs of the sinks using it.
pub(crate) struct SharedClient {
    pub(super) client: async_nats::Client,
    pub(super) listeners: Arc<Listeners>,
    /// The slot this client was shared from, forgotten (key, secrets and all) when it drops.
    home: Option<(Weak<Mutex<Slots>>, ClientKey)>,
}

impl SharedClient {
    pub(super) fn new(client: async_nats::Client, listeners: Arc<Listeners>) -> SharedClient {
        SharedClient {
            client,
            listeners,
            home: None,
        }
    }
}

impl Drop for SharedClient {
    fn drop(&mut self) {
        let Some((slots, key)) = self.home.take() else {
            return;
        };
        let Some(slots) = slots.upgrade() else {
            return;
        };
        let mut slots = slots.lock().unwrap_or_else(|p| p.into_inner());
        // A sink opening now holds the slot too (and may connect into it): leave it then.
        let unused = slots.get(&key).is_some_and(|slot| {
            Arc::strong_count(slot) == 1
                && slot.try_lock().is_ok_and(|held| held.strong_count() == 0)
        });
        if unused {
            slots.remove(&key);
        }
    }
}

/// The event logs of the sinks on one client, held weakly: a closed sink drops out.
#[derive(Default)]
pub(crate) struct Listeners {
    logs: Mutex<Vec<Weak<EventLog>>>,
    /// Events the client's callback has handed on since it opened.
    reports: AtomicU64,
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

    /// How many events the callback has handed on so far. async-nats queues events for the
    /// callback in 128 slots and drops what does not fit: a sink whose flush saw many of them
    /// go by cannot tell that none of its own was dropped.
    pub(super) fn reports(&self) -> u64 {
        self.reports.load(Ordering::SeqCst)
    }

    /// Hand `event` to the logs it concerns.
    pub(super) fn record(&self, event: Event) {
        self.reports.fetch_add(1, Ordering::SeqCst);
        let logs: Vec<Arc<EventLog>> = self.lock().iter().filter_map(Weak::upgrade).collect();
        let subject = match &event {
            Event::ServerError(ServerError::Other(text)) => refused_subject(text),
            _ => None,
        };
        let claimants: Vec<&Arc<EventLog>> = match subject {
            // A refused JetStream API request is only of use to the route lookup that sent
            // it; kept anywhere else, it would end a neighbour's lookup or fill its log.
            Some(api) if api == super::routes::LOOKUP_SUBJECT => {
                let lookups: Vec<_> = logs.iter().filter(|log| log.looks_up(api)).collect();
                if lookups.is_empty() {
                    tracing::debug!(subject = api, "a JetStream API refusal no lookup awaits");
                }
                for log in lookups {
                    log.record(event.clone());
                }
                return;
            }
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

/// The subject a permission violation names (`... Publish to "subject"`), if it can be read
/// for sure. The server quotes it Go-style (`%q`), escaping `"`, `\` and non-printables with a
/// backslash; such a subject, or text after the closing quote (a queue name), gives `None`,
/// so the refusal goes to every sink rather than maybe to the wrong one.
pub(crate) fn refused_subject(report: &str) -> Option<&str> {
    if !report.contains("Permissions Violation") {
        return None;
    }
    let start = report.find('"')? + 1;
    let quoted = report[start..].trim_end().strip_suffix('"')?;
    if quoted.contains(['"', '\\']) {
        return None;
    }
    Some(quoted)
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

type Slots = HashMap<ClientKey, Slot>;

/// The clients of one runtime (and its clones), by connect config.
#[derive(Clone, Default)]
pub struct SharedClients {
    slots: Arc<Mutex<Slots>>,
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
        let key = ClientKey::of(config);
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            // Forget configs no sink holds any more (nor is opening), so secrets do not linger.
            slots.retain(|_, slot| {
                Arc::strong_count(slot) > 1
                    || slot.try_lock().map_or(true, |held| held.strong_count() > 0)
            });
            slots.entry(key.clone()).or_default().clone()
        };
        // A sink waiting for another's connect waits within its own connect timeout.
        let limit = Duration::from_millis(config.connect_timeout_ms.into());
        let started = tokio::time::Instant::now();
        let mut held = tokio::time::timeout(limit, slot.lock())
            .await
            .map_err(|_| {
                TransportError::timeout(format!(
                    "could not connect to {} within {} ms: a sink with the same settings was still connecting",
                    list_servers(&config.servers),
                    limit.as_millis()
                ))
            })?;
        if let Some(shared) = held.upgrade() {
            return Ok(shared);
        }
        let left = limit.saturating_sub(started.elapsed());
        let mut shared = SharedClient::connect(config, left).await?;
        shared.home = Some((Arc::downgrade(&self.slots), key));
        let shared = Arc::new(shared);
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

    /// Go's `%q` escapes these: the refusal goes to every sink rather than to a wrong one.
    #[test]
    fn an_escaped_subject_or_trailing_text_names_no_subject() {
        for report in [
            r#"Permissions Violation for Publish to "a\"b""#,
            r#"Permissions Violation for Publish to "a\\b""#,
            r#"Permissions Violation for Publish to "a\x01""#,
            r#"Permissions Violation for Publish to "a" b "c""#,
            r#"Permissions Violation for Subscription to "a" using queue "q""#,
            r#"Permissions Violation for Publish to "unterminated"#,
        ] {
            assert_eq!(refused_subject(report), None, "{report}");
        }
        assert_eq!(
            refused_subject("Permissions Violation for Publish to \"$JS.API.STREAM.NAMES\""),
            Some("$JS.API.STREAM.NAMES")
        );
    }
}
