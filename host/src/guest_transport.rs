//! The `transport` interface as the guest sees it, on a context and a view as wasmtime's
//! host crates do: [`TransportCtx`] is what a store keeps for it, [`TransportView`] borrows
//! that with the resource table for one call. The glue checks what the guest asks against
//! the sink's reach, checks its batches, times the host's I/O (so the CPU limit leaves it
//! out) and keeps the counters; the [`Connector`] does the I/O.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::{HasData, Resource, ResourceTable};

use crate::bindings::transport::{self, Batch, ConnectConfig, TransportError};
use crate::connector::{Connector, OpenConnection};
use crate::policy::Reach;
use crate::resume::Stored;
use crate::transport::{unpack, OutgoingMessage, TransportStats};

/// What a store keeps for its transport.
pub(crate) struct TransportCtx {
    connector: Arc<dyn Connector>,
    /// What the guest may connect to and make the host read; nothing until a sink's options
    /// set it.
    pub(crate) reach: Reach,
    /// The connection's counters as of the last transport call.
    pub(crate) stats: TransportStats,
    /// What a resumed run's stream holds of the checkpoint it replays: those messages are
    /// left out, so none is stored again after a later one.
    pub(crate) stored: Option<Stored>,
}

impl TransportCtx {
    pub(crate) fn new(connector: Arc<dyn Connector>) -> TransportCtx {
        TransportCtx {
            connector,
            reach: Reach::default(),
            stats: TransportStats::default(),
            stored: None,
        }
    }
}

/// One call's view of a store's transport: its context, the resource table holding its
/// connection, and the clock of host time the CPU limit leaves out.
pub(crate) struct TransportView<'a> {
    pub(crate) ctx: &'a mut TransportCtx,
    pub(crate) table: &'a mut ResourceTable,
    pub(crate) host_time: &'a mut Duration,
}

/// Links the generated `transport` traits to [`TransportView`].
pub(crate) struct HasTransport;

impl HasData for HasTransport {
    type Data<'a> = TransportView<'a>;
}

impl TransportView<'_> {
    /// Time a call on the connection behind `handle`, then refresh the counters.
    async fn timed(
        &mut self,
        handle: &Resource<OpenConnection>,
        call: Call,
    ) -> wasmtime::Result<Result<(), TransportError>> {
        let connection = &mut self.table.get_mut(handle)?.0;
        let started = Instant::now();
        let result = match call {
            Call::Publish(messages) => connection.publish(messages).await,
            Call::Flush => connection.flush().await,
        };
        *self.host_time += started.elapsed();
        self.ctx.stats = connection.stats();
        Ok(result)
    }
}

/// True when `message` carries a message id `stored` says its stream holds.
fn is_stored(stored: &Stored, message: &OutgoingMessage) -> bool {
    message
        .headers
        .iter()
        .find(|(name, _)| {
            AsRef::<str>::as_ref(name).eq_ignore_ascii_case(crate::resume::MESSAGE_ID_HEADER)
        })
        .is_some_and(|(_, id)| stored.holds(message.subject.as_str(), id.as_str()))
}

/// A call on an open connection.
enum Call {
    Publish(Vec<OutgoingMessage>),
    Flush,
}

impl transport::Host for TransportView<'_> {}

impl transport::HostConnection for TransportView<'_> {
    async fn open(
        &mut self,
        config: ConnectConfig,
    ) -> wasmtime::Result<Result<Resource<OpenConnection>, TransportError>> {
        if let Err(refused) = self.ctx.reach.check(&config) {
            return Ok(Err(refused));
        }
        let started = Instant::now();
        let connected = self.ctx.connector.connect(config).await;
        *self.host_time += started.elapsed();
        match connected {
            Ok(connection) => Ok(Ok(self.table.push(OpenConnection(connection))?)),
            Err(e) => Ok(Err(e)),
        }
    }

    async fn publish(
        &mut self,
        handle: Resource<OpenConnection>,
        batch: Batch,
    ) -> wasmtime::Result<Result<(), TransportError>> {
        let mut messages = match unpack(batch, self.ctx.reach.kv_bucket()) {
            Ok(messages) => messages,
            Err(refused) => return Ok(Err(refused)),
        };
        if let Some(stored) = &self.ctx.stored {
            messages.retain(|m| !is_stored(stored, m));
        }
        self.timed(&handle, Call::Publish(messages)).await
    }

    async fn flush(
        &mut self,
        handle: Resource<OpenConnection>,
    ) -> wasmtime::Result<Result<(), TransportError>> {
        self.timed(&handle, Call::Flush).await
    }

    async fn max_payload(&mut self, handle: Resource<OpenConnection>) -> wasmtime::Result<u64> {
        Ok(self.table.get(&handle)?.0.max_payload())
    }

    async fn drop(&mut self, handle: Resource<OpenConnection>) -> wasmtime::Result<()> {
        self.table.delete(handle)?;
        Ok(())
    }
}
