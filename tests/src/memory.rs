//! The real host glue (policy, batch checks, CPU accounting) with an in-memory transport that
//! records every call and fails on demand, plugged in as the runtime's `Connector`. It drives
//! the guest in isolation, with no NATS at all.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nats_sink::{
    ComponentInstance, Connection, Connector, OutgoingMessage, RuntimeConfig, SinkRuntime,
    SinkState, TransportFuture, TransportStats,
};
use wasmtime::component::{Component, ResourceAny};
use wasmtime::{Engine, Store};

pub use nats_sink::wit::{
    Auth, Batch, ChildRange, Column, ConnectConfig, Delivery, Interval, Rows, SinkError, Span,
    TransportError, Value,
};
use nats_sink::Exports;

/// One published message, as the host glue handed it to the transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub subject: String,
    pub headers: Vec<(String, String)>,
    pub payload: Vec<u8>,
}

impl From<&OutgoingMessage> for Message {
    fn from(message: &OutgoingMessage) -> Message {
        Message {
            subject: message.subject.to_string(),
            headers: message
                .headers
                .iter()
                .map(|(name, value)| (name.to_string(), value.as_str().to_string()))
                .collect(),
            payload: message.payload.to_vec(),
        }
    }
}

/// One recorded transport call.
#[derive(Debug, Clone)]
pub enum Call {
    /// Boxed: a config is far larger than the other calls.
    Open(Box<ConnectConfig>),
    Publish(Vec<Message>),
    Flush,
    Drop,
}

/// What the next calls should fail with.
#[derive(Default)]
pub struct Faults {
    pub open: Option<TransportError>,
    pub publish: Option<TransportError>,
    pub flush: Option<TransportError>,
}

/// What the in-memory transport announces as `max-payload` until a test sets another:
/// nats-server's default.
pub const DEFAULT_MAX_PAYLOAD: u64 = 1 << 20;

/// The in-memory transport: a `Connector` whose connections record what they are asked.
#[derive(Clone)]
pub struct Recorder {
    pub calls: Arc<Mutex<Vec<Call>>>,
    pub faults: Arc<Mutex<Faults>>,
    /// When set, published messages are counted but not kept (for benchmarks).
    pub discard: Arc<AtomicBool>,
    /// Messages published, kept or not.
    pub messages: Arc<AtomicU64>,
    /// What `max-payload` answers.
    pub max_payload: Arc<AtomicU64>,
}

impl Default for Recorder {
    fn default() -> Recorder {
        Recorder {
            calls: Arc::default(),
            faults: Arc::default(),
            discard: Arc::default(),
            messages: Arc::default(),
            max_payload: Arc::new(AtomicU64::new(DEFAULT_MAX_PAYLOAD)),
        }
    }
}

impl Recorder {
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    pub fn published(&self) -> Vec<Message> {
        self.calls()
            .into_iter()
            .filter_map(|c| {
                if let Call::Publish(m) = c {
                    Some(m)
                } else {
                    None
                }
            })
            .flatten()
            .collect()
    }

    fn record(&self, call: Call) {
        self.calls.lock().unwrap().push(call);
    }
}

impl Connector for Recorder {
    fn connect(&self, config: ConnectConfig) -> TransportFuture<'_, Box<dyn Connection>> {
        self.record(Call::Open(Box::new(config)));
        let fault = self.faults.lock().unwrap().open.take();
        let connection = MemoryConnection {
            recorder: self.clone(),
            stats: TransportStats::default(),
        };
        Box::pin(async move {
            match fault {
                Some(e) => Err(e),
                None => Ok(Box::new(connection) as Box<dyn Connection>),
            }
        })
    }
}

/// One recorded connection; dropping it records `Drop`.
struct MemoryConnection {
    recorder: Recorder,
    stats: TransportStats,
}

impl Connection for MemoryConnection {
    fn publish(&mut self, messages: Vec<OutgoingMessage>) -> TransportFuture<'_, ()> {
        let recorder = &self.recorder;
        let outcome = match recorder.faults.lock().unwrap().publish.take() {
            Some(e) => Err(e),
            None => {
                recorder
                    .messages
                    .fetch_add(messages.len() as u64, Ordering::Relaxed);
                self.stats.messages += messages.len() as u64;
                self.stats.payload_bytes +=
                    messages.iter().map(|m| m.payload.len() as u64).sum::<u64>();
                if !recorder.discard.load(Ordering::Relaxed) {
                    recorder.record(Call::Publish(messages.iter().map(Message::from).collect()));
                }
                Ok(())
            }
        };
        Box::pin(async move { outcome })
    }

    fn flush(&mut self) -> TransportFuture<'_, ()> {
        let outcome = match self.recorder.faults.lock().unwrap().flush.take() {
            Some(e) => Err(e),
            None => {
                self.recorder.record(Call::Flush);
                self.stats.flushes += 1;
                Ok(())
            }
        };
        Box::pin(async move { outcome })
    }

    fn max_payload(&self) -> u64 {
        self.recorder.max_payload.load(Ordering::Relaxed)
    }

    fn stats(&self) -> TransportStats {
        self.stats
    }
}

impl Drop for MemoryConnection {
    fn drop(&mut self) {
        self.recorder.record(Call::Drop);
    }
}

/// The component loaded once; each `instance` call makes a fresh store with its own recorder.
pub struct MemoryHost {
    runtime: SinkRuntime,
}

/// One instance of the component and the recorder of its transport calls.
pub struct MemoryInstance {
    pub store: Store<SinkState>,
    pub bindings: Exports,
    pub recorder: Recorder,
    runtime: SinkRuntime,
}

impl MemoryHost {
    pub fn load(path: &std::path::Path) -> wasmtime::Result<MemoryHost> {
        // No limits: the harness drives one instance for as long as a test or benchmark runs.
        let config = RuntimeConfig {
            memory_limit: usize::MAX,
            cpu_limit: Duration::MAX,
            ..RuntimeConfig::default()
        };
        Ok(MemoryHost {
            runtime: SinkRuntime::load_with(path, &config)?,
        })
    }

    pub fn component(&self) -> &Component {
        self.runtime.component()
    }

    pub fn engine(&self) -> &Engine {
        self.runtime.engine()
    }

    pub async fn instance(&self) -> wasmtime::Result<MemoryInstance> {
        let recorder = Recorder::default();
        let runtime = self
            .runtime
            .clone()
            .with_connector(Arc::new(recorder.clone()));
        let ComponentInstance { store, bindings } = runtime.instance().await?;
        Ok(MemoryInstance {
            store,
            bindings,
            recorder,
            runtime,
        })
    }
}

impl MemoryInstance {
    /// Open a sink; the transport may reach what `options` name, as `SinkRuntime::open` allows.
    pub async fn open(
        &mut self,
        options: &[(String, String)],
        schema: &[Column],
    ) -> wasmtime::Result<Result<ResourceAny, SinkError>> {
        self.store.data_mut().set_reach(self.runtime.reach(options));
        self.bindings.open(&mut self.store, options, schema).await
    }

    pub async fn begin_checkpoint(&mut self, sink: ResourceAny, id: u64) -> wasmtime::Result<()> {
        self.bindings
            .begin_checkpoint(&mut self.store, sink, id)
            .await
    }

    pub async fn write(
        &mut self,
        sink: ResourceAny,
        rows: &Rows,
    ) -> wasmtime::Result<Result<(), SinkError>> {
        self.bindings.write(&mut self.store, sink, rows).await
    }

    pub async fn write_arrow(
        &mut self,
        sink: ResourceAny,
        ipc: &[u8],
    ) -> wasmtime::Result<Result<u32, SinkError>> {
        let ipc = nats_sink::arrow::packed_stream(ipc)?;
        self.bindings.write_arrow(&mut self.store, sink, &ipc).await
    }

    pub async fn flush(&mut self, sink: ResourceAny) -> wasmtime::Result<Result<(), SinkError>> {
        self.bindings.flush(&mut self.store, sink).await
    }
}
