//! The transport behind the WIT's `transport` interface, as traits a host can swap: a
//! [`Connector`] opens [`Connection`]s. The host glue (the policy check, the batch check, CPU
//! accounting, stats) calls them; [`NatsConnector`] (async-nats) is the default.

use std::future::Future;
use std::pin::Pin;

use crate::bindings::transport::{ConnectConfig, TransportError};
use crate::transport::{NatsConnection, OutgoingMessage, SharedClients, TransportStats};

/// A transport call in flight.
pub type TransportFuture<'a, T> =
    Pin<Box<dyn Future<Output = Result<T, TransportError>> + Send + 'a>>;

/// Opens connections for the sinks of one runtime.
pub trait Connector: Send + Sync + 'static {
    /// Connect as `config` says. The host has already checked it against the sink's reach.
    fn connect(&self, config: ConnectConfig) -> TransportFuture<'_, Box<dyn Connection>>;
}

/// One sink's connection.
pub trait Connection: Send + 'static {
    /// Send `messages` (already checked: subjects, headers and payloads are valid). After an
    /// error nothing since the last flush counts as confirmed.
    fn publish(&mut self, messages: Vec<OutgoingMessage>) -> TransportFuture<'_, ()>;
    /// Return once every message since the previous flush is confirmed.
    fn flush(&mut self) -> TransportFuture<'_, ()>;
    /// The largest message the server takes (payload and headers).
    fn max_payload(&self) -> u64;
    /// The connection's counters so far.
    fn stats(&self) -> TransportStats;
}

/// The default connector: NATS over async-nats. Sinks with the same connect config share one
/// client (one TCP connection), each with its own ordering, flush, acks and counters; the
/// last sink to close closes it.
#[derive(Debug, Clone, Default)]
pub struct NatsConnector {
    clients: SharedClients,
}

impl NatsConnector {
    /// The clients open now, one per distinct connect config in use.
    pub fn open_clients(&self) -> usize {
        self.clients.open_clients()
    }
}

impl Connector for NatsConnector {
    fn connect(&self, config: ConnectConfig) -> TransportFuture<'_, Box<dyn Connection>> {
        Box::pin(async move {
            let connection = NatsConnection::connect_shared(&self.clients, config).await?;
            Ok(Box::new(connection) as Box<dyn Connection>)
        })
    }
}

impl Connection for NatsConnection {
    fn publish(&mut self, messages: Vec<OutgoingMessage>) -> TransportFuture<'_, ()> {
        Box::pin(self.publish_messages(messages))
    }

    fn flush(&mut self) -> TransportFuture<'_, ()> {
        Box::pin(NatsConnection::flush(self))
    }

    fn max_payload(&self) -> u64 {
        NatsConnection::max_payload(self)
    }

    fn stats(&self) -> TransportStats {
        NatsConnection::stats(self)
    }
}

/// A connection in a sink's resource table: the WIT `connection` resource.
pub struct OpenConnection(pub(crate) Box<dyn Connection>);
