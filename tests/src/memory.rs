//! A second host for the same component: wasmtime with an in-memory transport that records
//! every call and fails on demand. It drives the guest in isolation, with no NATS at all, and
//! shows the WIT world is a contract any host can implement.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use wasmtime::component::{Component, Linker, Resource, ResourceAny, ResourceTable};
use wasmtime::{Engine, Store};

wasmtime::component::bindgen!({
    path: "../wit",
    world: "connector",
    imports: { default: async | trappable },
    exports: { default: async },
    with: { "nats:sink/transport.connection": MemoryConnection },
});

pub use self::nats::sink::transport::{Auth, Batch, ConnectConfig, Span, TransportError};
pub use exports::nats::sink::encoder::{ChildRange, Column, Interval, Rows, SinkError, Value};

/// One published message, unpacked from its batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub subject: String,
    pub headers: Vec<(String, String)>,
    pub payload: Vec<u8>,
}

/// A batch's messages; a span or index outside the batch is a test failure.
pub fn unpack(batch: &Batch) -> Vec<Message> {
    let bytes = |s: &Span| batch.data[s.start as usize..(s.start + s.len) as usize].to_vec();
    let text = |s: &Span| String::from_utf8(bytes(s)).expect("UTF-8 text in the batch");
    batch
        .messages
        .iter()
        .map(|m| Message {
            subject: text(&m.subject),
            headers: batch.headers
                [m.headers.start as usize..(m.headers.start + m.headers.len) as usize]
                .iter()
                .map(|h| (batch.header_names[h.name as usize].clone(), text(&h.value)))
                .collect(),
            payload: bytes(&m.payload),
        })
        .collect()
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

pub struct MemoryConnection;

pub struct MemoryState {
    table: ResourceTable,
    recorder: Recorder,
}

impl self::nats::sink::transport::Host for MemoryState {}

impl self::nats::sink::transport::HostConnection for MemoryState {
    async fn open(
        &mut self,
        config: ConnectConfig,
    ) -> wasmtime::Result<Result<Resource<MemoryConnection>, TransportError>> {
        self.recorder.record(Call::Open(Box::new(config)));
        if let Some(e) = self.recorder.faults.lock().unwrap().open.take() {
            return Ok(Err(e));
        }
        Ok(Ok(self.table.push(MemoryConnection)?))
    }

    async fn publish(
        &mut self,
        _: Resource<MemoryConnection>,
        batch: Batch,
    ) -> wasmtime::Result<Result<(), TransportError>> {
        if let Some(e) = self.recorder.faults.lock().unwrap().publish.take() {
            return Ok(Err(e));
        }
        self.recorder
            .messages
            .fetch_add(batch.messages.len() as u64, Ordering::Relaxed);
        if !self.recorder.discard.load(Ordering::Relaxed) {
            self.recorder.record(Call::Publish(unpack(&batch)));
        }
        Ok(Ok(()))
    }

    async fn flush(
        &mut self,
        _: Resource<MemoryConnection>,
    ) -> wasmtime::Result<Result<(), TransportError>> {
        if let Some(e) = self.recorder.faults.lock().unwrap().flush.take() {
            return Ok(Err(e));
        }
        self.recorder.record(Call::Flush);
        Ok(Ok(()))
    }

    async fn max_payload(&mut self, _: Resource<MemoryConnection>) -> wasmtime::Result<u64> {
        Ok(self.recorder.max_payload.load(Ordering::Relaxed))
    }

    async fn drop(&mut self, handle: Resource<MemoryConnection>) -> wasmtime::Result<()> {
        self.recorder.record(Call::Drop);
        self.table.delete(handle)?;
        Ok(())
    }
}

/// The component loaded once; each `instance` call makes a fresh store with its own recorder.
pub struct MemoryHost {
    engine: Engine,
    component: Component,
    linker: Linker<MemoryState>,
}

/// One instance of the component and the recorder of its transport calls.
pub struct MemoryInstance {
    pub store: Store<MemoryState>,
    pub bindings: Connector,
    pub recorder: Recorder,
}

impl MemoryHost {
    pub fn load(path: &std::path::Path) -> wasmtime::Result<MemoryHost> {
        let engine = Engine::default();
        let component = Component::from_file(&engine, path)?;
        let mut linker = Linker::new(&engine);
        Connector::add_to_linker::<_, wasmtime::component::HasSelf<_>>(&mut linker, |s| s)?;
        Ok(MemoryHost {
            engine,
            component,
            linker,
        })
    }

    pub fn component(&self) -> &Component {
        &self.component
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub async fn instance(&self) -> wasmtime::Result<MemoryInstance> {
        let recorder = Recorder::default();
        let mut store = Store::new(
            &self.engine,
            MemoryState {
                table: ResourceTable::new(),
                recorder: recorder.clone(),
            },
        );
        let bindings =
            Connector::instantiate_async(&mut store, &self.component, &self.linker).await?;
        Ok(MemoryInstance {
            store,
            bindings,
            recorder,
        })
    }
}

impl MemoryInstance {
    pub async fn open(
        &mut self,
        options: &[(String, String)],
        schema: &[Column],
    ) -> wasmtime::Result<Result<ResourceAny, SinkError>> {
        self.bindings
            .nats_sink_encoder()
            .nats_sink()
            .call_open(&mut self.store, options, schema)
            .await
    }

    pub async fn begin_checkpoint(&mut self, sink: ResourceAny, id: u64) -> wasmtime::Result<()> {
        self.bindings
            .nats_sink_encoder()
            .nats_sink()
            .call_begin_checkpoint(&mut self.store, sink, id)
            .await
    }

    pub async fn write(
        &mut self,
        sink: ResourceAny,
        rows: &Rows,
    ) -> wasmtime::Result<Result<(), SinkError>> {
        self.bindings
            .nats_sink_encoder()
            .nats_sink()
            .call_write(&mut self.store, sink, rows)
            .await
    }

    pub async fn flush(&mut self, sink: ResourceAny) -> wasmtime::Result<Result<(), SinkError>> {
        self.bindings
            .nats_sink_encoder()
            .nats_sink()
            .call_flush(&mut self.store, sink)
            .await
    }
}
