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

/// The default connector: NATS over async-nats, one client (one TCP connection) per sink.
///
/// [`NatsConnector::shared`] opts into sharing: sinks with the same connect config use one
/// client, each with its own ordering, flush, acks, failure latching and counters, and the
/// last sink to close closes it. It is not the default because the server reports a refused
/// publish as an event on the connection, and async-nats keeps only 128 such events queued:
/// when a neighbour's flood of refusals may have pushed out one of this sink's own, the
/// sink's flush fails rather than pass a refused row as confirmed. With a client per sink, a
/// flood can only be the sink's own.
#[derive(Debug, Clone, Default)]
pub struct NatsConnector {
    /// The shared clients, when sharing.
    clients: Option<SharedClients>,
}

impl NatsConnector {
    /// A connector whose sinks with the same connect config share one client.
    pub fn shared() -> NatsConnector {
        NatsConnector {
            clients: Some(SharedClients::default()),
        }
    }

    /// The shared clients open now, one per distinct connect config in use (none when not
    /// sharing).
    pub fn open_clients(&self) -> usize {
        self.clients.as_ref().map_or(0, SharedClients::open_clients)
    }
}

impl Connector for NatsConnector {
    fn connect(&self, config: ConnectConfig) -> TransportFuture<'_, Box<dyn Connection>> {
        Box::pin(async move {
            let connection = match &self.clients {
                Some(clients) => NatsConnection::connect_shared(clients, config).await?,
                None => NatsConnection::connect(config).await?,
            };
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
