//! Loading the component once and opening sinks from it, each in its own store.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::{Component, Linker, ResourceAny, ResourceTable};
use wasmtime::{
    Cache, CacheConfig, Config, Engine, InstanceAllocationStrategy, Store, UpdateDeadline,
};

use crate::bindings::encoder::{Column, OptionInfo, OptionProblem, Rows, SinkError, Target};
use crate::bindings::{encoder_of, World, WorldPre};
use crate::connector::{Connector, NatsConnector};
use crate::error::{HostError, RuntimeError, RuntimeErrorKind};
use crate::exports::Exports;
use crate::guest_transport::{HasTransport, TransportCtx, TransportView};
use crate::metrics::Metrics;
use crate::policy::{OutboundPolicy, Reach};
use crate::sandbox::{EpochTicker, LimitHit, Limits, Sandbox};
pub use crate::sandbox::{DEFAULT_CPU_LIMIT, DEFAULT_MEMORY_LIMIT};

/// How a runtime compiles its component and limits each sink.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Where compiled code is kept between runs, keyed by the component's bytes and the
    /// engine's settings, so a second start skips compilation. `None` compiles every time.
    pub cache_dir: Option<PathBuf>,
    /// Memory each sink's guest may grow to, in bytes.
    pub memory_limit: usize,
    /// Time one call may spend running guest code, not counting the host's I/O.
    pub cpu_limit: Duration,
    /// The servers and files any sink may reach, beyond which its own options cannot widen.
    pub outbound: OutboundPolicy,
    /// Reserve slots for this many instances at once (open sinks, and the short-lived ones
    /// `describe`, `validate` and `resolve` make) with wasmtime's pooling allocator: an
    /// instance reuses a warm slot instead of mapping fresh memory, and one past the count
    /// fails to instantiate. `None` (the default) maps each instance's memory as it comes.
    pub pooled_instances: Option<u32>,
}

impl Default for RuntimeConfig {
    fn default() -> RuntimeConfig {
        RuntimeConfig {
            cache_dir: None,
            memory_limit: DEFAULT_MEMORY_LIMIT,
            cpu_limit: DEFAULT_CPU_LIMIT,
            outbound: OutboundPolicy::default(),
            pooled_instances: None,
        }
    }
}

/// The largest component file read: ours is under 1 MiB, and a path such as `/dev/zero` must
/// not fill the machine's memory.
pub const MAX_COMPONENT_BYTES: u64 = 64 << 20;

/// The bytes of the component at `path`, refused past [`MAX_COMPONENT_BYTES`].
fn read_component(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_COMPONENT_BYTES + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_COMPONENT_BYTES {
        return Err(std::io::Error::other(format!(
            "larger than {} MiB: not a nats-sink component",
            MAX_COMPONENT_BYTES >> 20
        )));
    }
    Ok(bytes)
}

/// A call that trapped, naming the limit it hit if it hit one.
fn trapped(store: &Store<SinkState>, call: &str, after: &str, trap: wasmtime::Error) -> HostError {
    let sandbox = &store.data().sandbox;
    let context = match sandbox.limit_hit() {
        Some(LimitHit::Memory) => format!(
            "{call} exceeded the sink's memory limit of {} MiB{after}",
            sandbox.limits.memory >> 20
        ),
        Some(LimitHit::Cpu) => format!(
            "{call} exceeded the sink's CPU limit of {} ms per call{after}",
            sandbox.limits.cpu.as_millis()
        ),
        None => format!("{call} trapped{after}"),
    };
    let kind = match sandbox.limit_hit() {
        Some(LimitHit::Memory) => RuntimeErrorKind::MemoryLimit,
        Some(LimitHit::Cpu) => RuntimeErrorKind::CpuLimit,
        None => RuntimeErrorKind::Trap,
    };
    RuntimeError::new(kind, context, trap).into()
}

/// Start the clock of a call into the guest.
fn arm(store: &mut Store<SinkState>) {
    store.data_mut().sandbox.start_call();
    store.set_epoch_deadline(1);
}

/// A store's data: the resource table holding the sink's connection, the transport's
/// context, and the sandbox's limits and CPU clock.
pub struct SinkState {
    table: ResourceTable,
    transport: TransportCtx,
    sandbox: Sandbox,
}

impl SinkState {
    fn new(limits: Limits, connector: Arc<dyn Connector>) -> SinkState {
        SinkState {
            table: ResourceTable::new(),
            transport: TransportCtx::new(connector),
            sandbox: Sandbox::new(limits),
        }
    }

    /// The view the `transport` interface is implemented on.
    fn transport_view(&mut self) -> TransportView<'_> {
        TransportView {
            ctx: &mut self.transport,
            table: &mut self.table,
            host_time: &mut self.sandbox.host_time,
        }
    }

    /// Let the guest reach what `reach` allows (see [`SinkRuntime::reach`]); until then it
    /// may connect to nothing.
    pub fn set_reach(&mut self, reach: Reach) {
        self.transport.reach = reach;
    }
}

/// A fresh instance of the component in its own store, for calling its exports directly
/// (what [`Sink`] does for you): the store's CPU clock starts at instantiation.
pub struct ComponentInstance {
    /// The store: pass it to every call.
    pub store: Store<SinkState>,
    /// The component's exports.
    pub bindings: Exports,
}

/// A compiled, pre-instantiated component from which sinks are opened.
#[derive(Clone)]
pub struct SinkRuntime {
    engine: Engine,
    pre: WorldPre<SinkState>,
    limits: Limits,
    outbound: OutboundPolicy,
    connector: Arc<dyn Connector>,
    /// Each pooled instance's memory slot, when pooling.
    pool_slot: Option<usize>,
    /// Shared by the runtime's clones; the ticker stops with the last one.
    _ticker: Arc<EpochTicker>,
}

impl SinkRuntime {
    /// Compile the component at `path` and link it against the NATS transport.
    pub fn load(path: impl AsRef<Path>) -> Result<SinkRuntime, HostError> {
        SinkRuntime::load_with(path, &RuntimeConfig::default())
    }

    /// `load`, with a compile cache and limits.
    pub fn load_with(
        path: impl AsRef<Path>,
        config: &RuntimeConfig,
    ) -> Result<SinkRuntime, HostError> {
        let path = path.as_ref();
        let bytes = read_component(path).map_err(|e| {
            let context = format!("reading component {}", path.display());
            RuntimeError::new(RuntimeErrorKind::Load, context, e)
        })?;
        SinkRuntime::from_bytes_with(&bytes, config).map_err(|e| match e {
            HostError::Runtime(e) => HostError::Runtime(e.within(path.display())),
            other => other,
        })
    }

    /// Compile a component from its bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<SinkRuntime, HostError> {
        SinkRuntime::from_bytes_with(bytes, &RuntimeConfig::default())
    }

    /// `from_bytes`, with a compile cache and limits.
    pub fn from_bytes_with(bytes: &[u8], config: &RuntimeConfig) -> Result<SinkRuntime, HostError> {
        let mut engine_config = Config::new();
        engine_config.epoch_interruption(true);
        if let Some(instances) = config.pooled_instances {
            engine_config.allocation_strategy(InstanceAllocationStrategy::Pooling(
                crate::sandbox::pool(instances, config.memory_limit),
            ));
        }
        // NATS_SINK_PERFMAP=1: write /tmp/perf-<pid>.map, so `perf report` names guest functions.
        if std::env::var_os("NATS_SINK_PERFMAP").is_some_and(|v| v == "1") {
            engine_config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        if let Some(dir) = &config.cache_dir {
            let context = || format!("the compile cache in {}", dir.display());
            let load = |e| RuntimeError::new(RuntimeErrorKind::Load, context(), e);
            std::fs::create_dir_all(dir).map_err(load)?;
            // wasmtime wants an absolute directory.
            let dir = std::path::absolute(dir).map_err(load)?;
            let mut cache_config = CacheConfig::new();
            cache_config.with_directory(dir);
            let cache = Cache::new(cache_config)
                .map_err(|e| RuntimeError::new(RuntimeErrorKind::Load, context(), e))?;
            engine_config.cache(Some(cache));
        }
        let compile = |context: &str| {
            let context = context.to_string();
            move |e| RuntimeError::new(RuntimeErrorKind::Compile, context, e)
        };
        let engine = Engine::new(&engine_config).map_err(compile("creating the engine"))?;
        // Said in one line, without the file's bytes (a path can name a secret by mistake).
        if !bytes.starts_with(b"\0asm") {
            return Err(RuntimeError::new(
                RuntimeErrorKind::Compile,
                "compiling the component",
                std::io::Error::other("not a WebAssembly file (it does not start with \\0asm)"),
            )
            .into());
        }
        let component =
            Component::new(&engine, bytes).map_err(compile("compiling the component"))?;
        let link = |context: &str| {
            let context = context.to_string();
            move |e| RuntimeError::new(RuntimeErrorKind::Link, context, e)
        };
        let mut linker = Linker::<SinkState>::new(&engine);
        World::add_to_linker::<_, HasTransport>(&mut linker, SinkState::transport_view)
            .map_err(link("linking the transport"))?;
        let instance_pre = linker
            .instantiate_pre(&component)
            .map_err(link("the component does not fit the nats-sink world"))?;
        let pre = WorldPre::new(instance_pre).map_err(link(
            "the component does not export the nats-sink interface",
        ))?;
        Ok(SinkRuntime {
            _ticker: Arc::new(EpochTicker::start(engine.clone()).map_err(|e| {
                RuntimeError::new(RuntimeErrorKind::Load, "starting the CPU-limit ticker", e)
            })?),
            engine,
            pre,
            limits: Limits {
                memory: config.memory_limit,
                cpu: config.cpu_limit,
            },
            outbound: config.outbound.clone(),
            connector: Arc::new(NatsConnector::default()),
            pool_slot: config.pooled_instances.map(|_| config.memory_limit),
        })
    }

    /// Limit each sink's guest memory to `bytes`. With pooled instances, at most the pool's
    /// slot (the `memory_limit` the runtime was loaded with), so that the limit named when a
    /// sink hits it is the one that stopped it.
    pub fn with_memory_limit(mut self, bytes: usize) -> SinkRuntime {
        self.limits.memory = self.pool_slot.map_or(bytes, |slot| bytes.min(slot));
        self
    }

    /// Limit the time each call may run guest code (the host's I/O does not count).
    pub fn with_cpu_limit(mut self, limit: Duration) -> SinkRuntime {
        self.limits.cpu = limit;
        self
    }

    /// Open every sink's connection with `connector` instead of async-nats.
    pub fn with_connector(mut self, connector: Arc<dyn Connector>) -> SinkRuntime {
        self.connector = connector;
        self
    }

    /// The engine the component is compiled for.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The compiled component.
    pub fn component(&self) -> &Component {
        self.pre.instance_pre().component()
    }

    /// A fresh instance in its own store, for calling the component's exports directly.
    pub async fn instance(&self) -> Result<ComponentInstance, HostError> {
        let (store, bindings) = self.instantiate().await?;
        Ok(ComponentInstance {
            store,
            bindings: Exports(bindings),
        })
    }

    async fn instantiate(&self) -> Result<(Store<SinkState>, World), HostError> {
        let state = SinkState::new(self.limits, self.connector.clone());
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.sandbox);
        store.epoch_deadline_callback(|mut store| {
            store.data_mut().sandbox.check_cpu()?;
            // Let other sinks on this thread run between checks.
            Ok(UpdateDeadline::Yield(1))
        });
        arm(&mut store);
        let bindings = match self.pre.instantiate_async(&mut store).await {
            Ok(bindings) => bindings,
            // The component's own memory minimum is over the limit: no call could ever run.
            Err(e) if store.data().sandbox.limit_hit() == Some(LimitHit::Memory) => {
                let context = format!(
                    "instantiating: the component needs more memory than the sink's limit of {} MiB",
                    store.data().sandbox.limits.memory >> 20
                );
                return Err(RuntimeError::new(RuntimeErrorKind::MemoryLimit, context, e).into());
            }
            Err(e) => {
                return Err(
                    RuntimeError::new(RuntimeErrorKind::Instantiate, "instantiating", e).into(),
                )
            }
        };
        Ok((store, bindings))
    }

    /// Every option the guest understands.
    pub async fn describe(&self) -> Result<Vec<OptionInfo>, HostError> {
        let (mut store, bindings) = self.instantiate().await?;
        encoder_of(&bindings)
            .call_describe(&mut store)
            .await
            .map_err(|e| trapped(&store, "describe", "", e))
    }

    /// Every problem with `options`, as the guest sees them.
    pub async fn validate(
        &self,
        options: &[(String, String)],
    ) -> Result<Vec<OptionProblem>, HostError> {
        let (mut store, bindings) = self.instantiate().await?;
        encoder_of(&bindings)
            .call_validate(&mut store, options)
            .await
            .map_err(|e| trapped(&store, "validate", "", e))
    }

    /// What valid `options` connect to and publish on, without connecting.
    pub async fn resolve(&self, options: &[(String, String)]) -> Result<Target, HostError> {
        let (mut store, bindings) = self.instantiate().await?;
        encoder_of(&bindings)
            .call_resolve(&mut store, options)
            .await
            .map_err(|e| trapped(&store, "resolve", "", e))?
            .map_err(HostError::Sink)
    }

    /// The servers and files a sink opened with `options` may reach.
    pub fn reach(&self, options: &[(String, String)]) -> Reach {
        Reach::from_options(options, &self.outbound)
    }

    /// Validate `options` and `schema`, connect, and return a sink ready for `write`.
    pub async fn open(
        &self,
        options: &[(String, String)],
        schema: &[Column],
    ) -> Result<Sink, HostError> {
        let (mut store, bindings) = self.instantiate().await?;
        store.data_mut().set_reach(self.reach(options));
        let opened = encoder_of(&bindings)
            .sink()
            .call_open(&mut store, options, schema)
            .await
            .map_err(|e| trapped(&store, "open", "", e))?;
        let handle = opened.map_err(HostError::Sink)?;
        Ok(Sink {
            store,
            bindings,
            handle: Some(handle),
            metrics: Metrics::default(),
        })
    }
}

/// One open sink: its own store, instance and connection.
pub struct Sink {
    store: Store<SinkState>,
    bindings: World,
    /// `None` once closed.
    handle: Option<ResourceAny>,
    metrics: Metrics,
}

impl Sink {
    /// The guest's sink for the next call, with the call's CPU clock started.
    fn start_call(&mut self) -> Result<ResourceAny, HostError> {
        let handle = self
            .handle
            .ok_or_else(|| HostError::Sink(SinkError::closed_by_caller()))?;
        arm(&mut self.store);
        Ok(handle)
    }

    /// Start checkpoint `id`: rows written from now on carry the message ids
    /// `<sink_id>:<id>:<position>`, so a replay of the same checkpoint is deduplicated.
    pub async fn begin_checkpoint(&mut self, id: u64) -> Result<(), HostError> {
        let handle = self.start_call()?;
        // What a stream held of a replayed checkpoint concerns that checkpoint only.
        let transport = &mut self.store.data_mut().transport;
        if transport
            .stored
            .as_ref()
            .is_some_and(|s| s.checkpoint() != id)
        {
            transport.stored = None;
        }
        let result = encoder_of(&self.bindings)
            .sink()
            .call_begin_checkpoint(&mut self.store, handle, id)
            .await
            .map(Ok);
        self.settle("begin-checkpoint", result)
    }

    /// The prefix of this sink's message ids (`<sink_id>:<checkpoint>:<position>`), as the
    /// component computes it; `None` when dedupe is off.
    pub async fn sink_id(&mut self) -> Result<Option<String>, HostError> {
        let handle = self.start_call()?;
        let result = encoder_of(&self.bindings)
            .sink()
            .call_sink_id(&mut self.store, handle)
            .await
            .map(Ok);
        self.settle("sink-id", result)
    }

    /// Encode and publish `rows`, one message each. On `invalid-row`, the rows before the bad
    /// one were published; nothing at or after it was.
    pub async fn write(&mut self, rows: &Rows) -> Result<(), HostError> {
        let handle = self.start_call()?;
        let result = encoder_of(&self.bindings)
            .sink()
            .call_write(&mut self.store, handle, rows)
            .await;
        let outcome = self.settle("write", result);
        self.metrics.written(rows.len(), &outcome);
        outcome
    }

    /// Encode and publish the rows of one Arrow IPC stream (a schema, then record batches),
    /// as [`Sink::write_arrow`] does, for a caller that holds the stream's bytes already; the
    /// number of rows it held, every one published. A malformed, truncated or compressed
    /// stream is `invalid-row` at the first row it would have held, with no column named.
    pub async fn write_arrow_ipc(&mut self, ipc: &[u8]) -> Result<u32, HostError> {
        let ipc = crate::arrow::packed_stream(ipc)?;
        let handle = self.start_call()?;
        let result = encoder_of(&self.bindings)
            .sink()
            .call_write_arrow(&mut self.store, handle, &ipc)
            .await;
        match self.settle("write-arrow", result) {
            Ok(rows) => {
                self.metrics.written(rows as usize, &Ok(()));
                Ok(rows)
            }
            Err(e) => {
                let failed = Err(e);
                self.metrics.written(0, &failed);
                failed.map(|()| 0)
            }
        }
    }

    /// Return once everything written since the last flush is confirmed by NATS.
    pub async fn flush(&mut self) -> Result<(), HostError> {
        let started = Instant::now();
        let handle = self.start_call()?;
        let result = encoder_of(&self.bindings)
            .sink()
            .call_flush(&mut self.store, handle)
            .await;
        let outcome = self.settle("flush", result);
        self.metrics.flushed(started.elapsed(), &outcome);
        outcome
    }

    /// Take in the connection's counters. A trap leaves the instance unusable, so the sink
    /// closes itself.
    fn settle<T>(
        &mut self,
        call: &str,
        result: wasmtime::Result<Result<T, SinkError>>,
    ) -> Result<T, HostError> {
        self.metrics.transport(self.store.data().transport.stats);
        match result {
            Ok(outcome) => outcome.map_err(HostError::Sink),
            Err(trap) => {
                self.handle = None;
                Err(trapped(&self.store, call, "; the sink is closed", trap))
            }
        }
    }

    /// After a `write` or `flush` that failed because JetStream refused a message: which
    /// messages since the last successful flush it refused and which it confirmed (one
    /// message per row, so `confirmed_before` rows of the checkpoint are confirmed). `None`
    /// after any other outcome, or when core NATS messages were among them.
    pub fn refusal(&self) -> Option<crate::transport::Refusal> {
        self.store.data().transport.stats.refusal
    }

    /// Leave out the messages `stored` says their stream holds already, until a checkpoint
    /// other than its own begins: a resumed run replays the checkpoint in flight at a crash
    /// under its ids, and sends only what was not stored (see
    /// [`crate::resume::stored_in_bucket`]).
    pub fn skip_stored(&mut self, stored: crate::resume::Stored) {
        self.store.data_mut().transport.stored = Some(stored);
    }

    /// The sink's metrics; a clone stays live (for a scrape endpoint) while the sink works.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Count into `metrics` from now on, such as those of the sink this one replaces on a new
    /// connection, so that one set of counters (and a scrape endpoint serving them) spans both.
    /// Call it once the replaced sink is closed.
    pub fn continue_metrics(&mut self, metrics: Metrics) {
        metrics.new_connection();
        self.metrics = metrics;
    }

    /// Drop the guest's sink (closing its connection) and the store.
    pub async fn close(mut self) -> Result<(), HostError> {
        if let Some(handle) = self.handle.take() {
            arm(&mut self.store);
            handle
                .resource_drop_async(&mut self.store)
                .await
                .map_err(|e| RuntimeError::new(RuntimeErrorKind::Trap, "closing the sink", e))?;
        }
        Ok(())
    }
}
