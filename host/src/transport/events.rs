//! A sink's event log: server errors, disconnects and reconnects as async-nats reports them
//! on the (maybe shared) connection, and a way to wait for the next one.

use std::collections::HashSet;
use std::sync::{Mutex, MutexGuard};

use async_nats::Event;
use tokio::sync::Notify;

/// What the connection's event callback saw.
struct Events {
    server_errors: Vec<String>,
    /// Disconnects since the last flush.
    disconnects: usize,
    /// Disconnects since the connection opened.
    drops: u64,
    connected: bool,
    /// Subjects this sink publishes to (and its flush inbox): the server's refusals naming
    /// them are this sink's, not its neighbours'.
    owned: HashSet<String>,
    /// JetStream API subjects this sink's route lookups await a reply on: the server's
    /// refusals naming them are this sink's.
    lookups: Vec<String>,
    /// Server errors were dropped past [`MAX_SERVER_ERRORS`] since the last flush: that flush
    /// fails, since one of them may have been this sink's.
    overflowed: bool,
}

/// Server errors kept between flushes; past this, the flush fails rather than guess.
const MAX_SERVER_ERRORS: usize = 1024;

/// The connection's events, and a way to wait for the next one.
pub(super) struct EventLog {
    events: Mutex<Events>,
    changed: Notify,
}

impl EventLog {
    /// A log that counts as disconnected until [`EventLog::set_connected`].
    pub(super) fn new() -> EventLog {
        EventLog {
            events: Mutex::new(Events {
                server_errors: Vec::new(),
                disconnects: 0,
                drops: 0,
                connected: false,
                owned: HashSet::new(),
                lookups: Vec::new(),
                overflowed: false,
            }),
            changed: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Events> {
        self.events.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn record(&self, event: Event) {
        let mut events = self.lock();
        match event {
            Event::ServerError(e) if events.server_errors.len() >= MAX_SERVER_ERRORS => {
                tracing::debug!(error = %e, "too many server errors since the last flush");
                events.overflowed = true;
            }
            Event::ServerError(e) => events.server_errors.push(e.to_string()),
            Event::Disconnected => {
                events.disconnects += 1;
                events.drops += 1;
                events.connected = false;
            }
            Event::Connected => events.connected = true,
            _ => return,
        }
        drop(events);
        self.changed.notify_waiters();
    }

    /// Set whether connected to what `state` reads, under the log's lock: an event recorded
    /// after it is newer than the reading.
    pub(super) fn set_connected(&self, state: impl FnOnce() -> bool) {
        let mut events = self.lock();
        events.connected = state();
    }

    /// Claim the server's refusals naming the JetStream API subject `api` while the returned
    /// guard lives (a route lookup in flight, which may be cancelled).
    pub(super) fn look_up(&self, api: &str) -> Lookup<'_> {
        self.lock().lookups.push(api.to_string());
        Lookup {
            log: self,
            api: api.to_string(),
        }
    }

    pub(super) fn looks_up(&self, api: &str) -> bool {
        self.lock().lookups.iter().any(|l| l == api)
    }

    /// Claim the server's refusals naming `subject`.
    pub(super) fn own(&self, subject: &str) {
        let mut events = self.lock();
        if !events.owned.contains(subject) {
            events.owned.insert(subject.to_string());
        }
    }

    pub(super) fn owns(&self, subject: &str) -> bool {
        self.lock().owned.contains(subject)
    }

    /// How many subjects are claimed.
    pub(super) fn owned(&self) -> usize {
        self.lock().owned.len()
    }

    /// Claim exactly `subjects` from now on (at a flush, when no refusal for others is due).
    pub(super) fn own_only<'a>(&self, subjects: impl IntoIterator<Item = &'a String>) {
        let mut events = self.lock();
        events.owned = subjects.into_iter().cloned().collect();
    }

    pub(super) fn is_connected(&self) -> bool {
        self.lock().connected
    }

    pub(super) fn drops(&self) -> u64 {
        self.lock().drops
    }

    /// Remove and return the first server error that `matches`.
    pub(super) fn take_server_error(&self, matches: impl Fn(&str) -> bool) -> Option<String> {
        let mut events = self.lock();
        let i = events.server_errors.iter().position(|e| matches(e))?;
        Some(events.server_errors.remove(i))
    }

    /// Remove and return every server error and the disconnects since the last call, and
    /// whether errors were dropped in between.
    pub(super) fn take_reports(&self) -> (Vec<String>, usize, bool) {
        let mut events = self.lock();
        let errors = std::mem::take(&mut events.server_errors);
        let overflowed = std::mem::take(&mut events.overflowed);
        (errors, std::mem::take(&mut events.disconnects), overflowed)
    }

    /// Return once `ready` gives a value, checking after every event.
    pub(super) async fn wait_for<T>(&self, mut ready: impl FnMut(&EventLog) -> Option<T>) -> T {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            // Registered before the check, so an event between the two is not missed.
            notified.as_mut().enable();
            if let Some(value) = ready(self) {
                return value;
            }
            notified.await;
        }
    }

    /// Return once a server error that `matches` has arrived, removing it.
    pub(super) async fn server_error(&self, matches: impl Fn(&str) -> bool) -> String {
        self.wait_for(|log| log.take_server_error(&matches)).await
    }

    pub(super) async fn connected(&self) {
        self.wait_for(|log| log.is_connected().then_some(())).await
    }
}

/// A route lookup in flight; it stops claiming its API subject's refusals when dropped.
pub(super) struct Lookup<'a> {
    log: &'a EventLog,
    api: String,
}

impl Drop for Lookup<'_> {
    fn drop(&mut self) {
        let mut events = self.log.lock();
        if let Some(i) = events.lookups.iter().position(|l| *l == self.api) {
            events.lookups.swap_remove(i);
        }
    }
}
