//! Loading the component once and opening sinks from it, each in its own store.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::{Component, Linker, Resource, ResourceAny, ResourceTable};
use wasmtime::{Cache, CacheConfig, Config, Engine, ResourceLimiter, Store, UpdateDeadline};

use crate::bindings::exports::nats_sink::sink::sink::{
    Column, OptionInfo, OptionProblem, Rows, SinkError, Target,
};
use crate::bindings::transport::{self, Batch, ConnectConfig, TransportError};
use crate::bindings::{NatsSinkComponent, NatsSinkComponentPre};
use crate::metrics::Metrics;
use crate::policy::{OutboundPolicy, Reach};
use crate::transport::{NatsConnection, TransportStats};

/// Memory a sink's guest may grow to, unless the caller says otherwise.
pub const DEFAULT_MEMORY_LIMIT: usize = 256 << 20;
/// Time one call may run guest code (host I/O excluded), unless the caller says otherwise.
pub const DEFAULT_CPU_LIMIT: Duration = Duration::from_secs(30);
/// How often the engine's epoch advances, and so how often a running guest is checked.
const EPOCH_TICK: Duration = Duration::from_millis(10);

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
}

impl Default for RuntimeConfig {
    fn default() -> RuntimeConfig {
        RuntimeConfig {
            cache_dir: None,
            memory_limit: DEFAULT_MEMORY_LIMIT,
            cpu_limit: DEFAULT_CPU_LIMIT,
            outbound: OutboundPolicy::default(),
        }
    }
}

/// Why a call into the runtime or a sink failed.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The guest refused: options, schema, a row, or a delivery failure it reports.
    #[error("{}", describe_sink_error(.0))]
    Sink(SinkError),
    /// The component could not be read, compiled, linked or run (a trap, a limit hit).
    #[error("{context}: {message}")]
    Runtime {
        /// What the host was doing.
        context: String,
        /// What went wrong, in wasmtime's words.
        message: String,
    },
}

impl HostError {
    fn runtime(context: impl Into<String>, error: wasmtime::Error) -> HostError {
        HostError::Runtime {
            context: context.into(),
            message: format!("{error:#}"),
        }
    }

    /// True when the problem is in what the caller passed (options, schema, a row), not delivery.
    pub fn is_input_error(&self) -> bool {
        matches!(
            self,
            HostError::Sink(
                SinkError::InvalidOptions(_)
                    | SinkError::InvalidSchema(_)
                    | SinkError::InvalidRow(_)
            )
        )
    }
}

/// `option `name`: message`, in the guest's own words for its option problems.
pub fn describe_option_problem(problem: &OptionProblem) -> String {
    nats_sink_guest::options::OptionProblem {
        name: problem.name.clone(),
        message: problem.message.clone(),
    }
    .to_string()
}

/// One line per problem, naming the option, the column or the row; never a secret.
pub fn describe_sink_error(error: &SinkError) -> String {
    match error {
        SinkError::InvalidOptions(problems) => {
            let lines: Vec<String> = problems.iter().map(describe_option_problem).collect();
            format!("invalid options: {}", lines.join("; "))
        }
        SinkError::InvalidSchema(m) => format!("invalid schema: {m}"),
        SinkError::InvalidRow(p) if p.column.is_empty() => format!("row {}: {}", p.row, p.message),
        SinkError::InvalidRow(p) => format!("row {}: column `{}`: {}", p.row, p.column, p.message),
        SinkError::Connection(m) => format!("connection: {m}"),
        SinkError::Publish(m) => format!("publish: {m}"),
        SinkError::Timeout(m) => format!("timeout: {m}"),
        SinkError::Closed(m) => format!("closed: {m}"),
    }
}

/// One line naming what failed, as `describe_sink_error` words the same cases.
pub fn describe_transport_error(error: &TransportError) -> String {
    match error {
        TransportError::Connection(m) => format!("connection: {m}"),
        TransportError::Publish(m) => format!("publish: {m}"),
        TransportError::Timeout(m) => format!("timeout: {m}"),
    }
}

/// What one sink's guest may use.
#[derive(Debug, Clone, Copy)]
struct Limits {
    memory: usize,
    cpu: Duration,
}

/// Advances an engine's epoch every `EPOCH_TICK` until dropped, so that running guests get
/// checked against their CPU limit.
struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    fn start(engine: Engine) -> std::io::Result<EpochTicker> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::Builder::new()
            .name("nats-sink-epoch".into())
            .spawn(move || {
                while !stopped.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })?;
        Ok(EpochTicker { stop })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A call that trapped, naming the limit it hit if it hit one.
fn trapped(store: &Store<SinkState>, call: &str, after: &str, trap: wasmtime::Error) -> HostError {
    let state = store.data();
    let context = if state.memory_limit_hit {
        format!(
            "{call} exceeded the sink's memory limit of {} MiB{after}",
            state.limits.memory >> 20
        )
    } else if state.cpu_limit_hit {
        format!(
            "{call} exceeded the sink's CPU limit of {} ms per call{after}",
            state.limits.cpu.as_millis()
        )
    } else {
        format!("{call} trapped{after}")
    };
    HostError::runtime(context, trap)
}

/// Start the clock of a call into the guest.
fn arm(store: &mut Store<SinkState>) {
    let state = store.data_mut();
    state.call_started = Instant::now();
    state.host_time = Duration::ZERO;
    store.set_epoch_deadline(1);
}

/// A store's data: the resource table holding the sink's connection, and its limits.
pub struct SinkState {
    table: ResourceTable,
    limits: Limits,
    /// Set when the guest asked for more memory than its limit, so its trap can be explained.
    memory_limit_hit: bool,
    /// Set when a call ran guest code longer than its limit.
    cpu_limit_hit: bool,
    /// When the current call into the guest began, and how much of it the host spent on I/O.
    call_started: Instant,
    host_time: Duration,
    /// The connection's counters as of the last transport call.
    stats: TransportStats,
    /// What the guest may connect to and make the host read; nothing until `open` sets it.
    reach: Reach,
}

impl SinkState {
    fn new(limits: Limits) -> SinkState {
        SinkState {
            table: ResourceTable::new(),
            limits,
            memory_limit_hit: false,
            cpu_limit_hit: false,
            call_started: Instant::now(),
            host_time: Duration::ZERO,
            stats: TransportStats::default(),
            reach: Reach::default(),
        }
    }

    /// Run `call` on the connection behind `handle`, then refresh the counters.
    async fn with_connection<T>(
        &mut self,
        handle: &Resource<NatsConnection>,
        call: impl AsyncFnOnce(&mut NatsConnection) -> T,
    ) -> wasmtime::Result<T> {
        let connection = self.table.get_mut(handle)?;
        let started = Instant::now();
        let result = call(connection).await;
        self.host_time += started.elapsed();
        self.stats = connection.stats();
        Ok(result)
    }
}

impl ResourceLimiter for SinkState {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Refused growth makes the guest's allocator fail, which traps the call.
        let allowed = desired <= self.limits.memory;
        self.memory_limit_hit |= !allowed;
        Ok(allowed)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(true)
    }
}

impl transport::Host for SinkState {}

impl transport::HostConnection for SinkState {
    async fn open(
        &mut self,
        config: ConnectConfig,
    ) -> wasmtime::Result<Result<Resource<NatsConnection>, TransportError>> {
        if let Err(refused) = self.reach.check(&config) {
            return Ok(Err(refused));
        }
        let started = Instant::now();
        let connected = NatsConnection::connect(config).await;
        self.host_time += started.elapsed();
        match connected {
            Ok(connection) => Ok(Ok(self.table.push(connection)?)),
            Err(e) => Ok(Err(e)),
        }
    }

    async fn publish(
        &mut self,
        handle: Resource<NatsConnection>,
        batch: Batch,
    ) -> wasmtime::Result<Result<(), TransportError>> {
        self.with_connection(&handle, async |c| c.publish(batch).await)
            .await
    }

    async fn flush(
        &mut self,
        handle: Resource<NatsConnection>,
    ) -> wasmtime::Result<Result<(), TransportError>> {
        self.with_connection(&handle, async |c| c.flush().await)
            .await
    }

    async fn max_payload(&mut self, handle: Resource<NatsConnection>) -> wasmtime::Result<u64> {
        Ok(self.table.get(&handle)?.max_payload())
    }

    async fn drop(&mut self, handle: Resource<NatsConnection>) -> wasmtime::Result<()> {
        self.table.delete(handle)?;
        Ok(())
    }
}

/// A compiled, pre-instantiated component from which sinks are opened.
#[derive(Clone)]
pub struct SinkRuntime {
    engine: Engine,
    pre: NatsSinkComponentPre<SinkState>,
    limits: Limits,
    outbound: OutboundPolicy,
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
        let bytes = std::fs::read(path).map_err(|e| HostError::Runtime {
            context: format!("reading component {}", path.display()),
            message: e.to_string(),
        })?;
        SinkRuntime::from_bytes_with(&bytes, config).map_err(|e| match e {
            HostError::Runtime { context, message } => HostError::Runtime {
                context: format!("{} ({context})", path.display()),
                message,
            },
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
        if let Some(dir) = &config.cache_dir {
            let context = || format!("the compile cache in {}", dir.display());
            std::fs::create_dir_all(dir).map_err(|e| HostError::Runtime {
                context: context(),
                message: e.to_string(),
            })?;
            // wasmtime wants an absolute directory.
            let dir = std::path::absolute(dir).map_err(|e| HostError::Runtime {
                context: context(),
                message: e.to_string(),
            })?;
            let mut cache_config = CacheConfig::new();
            cache_config.with_directory(dir);
            let cache = Cache::new(cache_config).map_err(|e| HostError::runtime(context(), e))?;
            engine_config.cache(Some(cache));
        }
        let engine = Engine::new(&engine_config)
            .map_err(|e| HostError::runtime("creating the engine", e))?;
        let component = Component::new(&engine, bytes)
            .map_err(|e| HostError::runtime("compiling the component", e))?;
        let mut linker = Linker::<SinkState>::new(&engine);
        NatsSinkComponent::add_to_linker::<_, wasmtime::component::HasSelf<_>>(
            &mut linker,
            |state| state,
        )
        .map_err(|e| HostError::runtime("linking the transport", e))?;
        let instance_pre = linker
            .instantiate_pre(&component)
            .map_err(|e| HostError::runtime("the component does not fit the nats-sink world", e))?;
        let pre = NatsSinkComponentPre::new(instance_pre).map_err(|e| {
            HostError::runtime("the component does not export the nats-sink interface", e)
        })?;
        Ok(SinkRuntime {
            _ticker: Arc::new(EpochTicker::start(engine.clone()).map_err(|e| {
                HostError::Runtime {
                    context: "starting the CPU-limit ticker".into(),
                    message: e.to_string(),
                }
            })?),
            engine,
            pre,
            limits: Limits {
                memory: config.memory_limit,
                cpu: config.cpu_limit,
            },
            outbound: config.outbound.clone(),
        })
    }

    /// Limit each sink's guest memory to `bytes`.
    pub fn with_memory_limit(mut self, bytes: usize) -> SinkRuntime {
        self.limits.memory = bytes;
        self
    }

    /// Limit the time each call may run guest code (the host's I/O does not count).
    pub fn with_cpu_limit(mut self, limit: Duration) -> SinkRuntime {
        self.limits.cpu = limit;
        self
    }

    async fn instantiate(&self) -> Result<(Store<SinkState>, NatsSinkComponent), HostError> {
        let mut store = Store::new(&self.engine, SinkState::new(self.limits));
        store.limiter(|state| state);
        store.epoch_deadline_callback(|mut store| {
            let state = store.data_mut();
            let guest_time = state.call_started.elapsed().saturating_sub(state.host_time);
            if guest_time > state.limits.cpu {
                state.cpu_limit_hit = true;
                return Err(wasmtime::Error::msg(format!(
                    "the guest ran for {} ms in one call",
                    guest_time.as_millis()
                )));
            }
            // Let other sinks on this thread run between checks.
            Ok(UpdateDeadline::Yield(1))
        });
        arm(&mut store);
        let bindings = self
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(|e| HostError::runtime("instantiating", e))?;
        Ok((store, bindings))
    }

    /// Every option the guest understands.
    pub async fn describe(&self) -> Result<Vec<OptionInfo>, HostError> {
        let (mut store, bindings) = self.instantiate().await?;
        bindings
            .nats_sink_sink_sink()
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
        bindings
            .nats_sink_sink_sink()
            .call_validate(&mut store, options)
            .await
            .map_err(|e| trapped(&store, "validate", "", e))
    }

    /// What valid `options` connect to and publish on, without connecting.
    pub async fn resolve(&self, options: &[(String, String)]) -> Result<Target, HostError> {
        let (mut store, bindings) = self.instantiate().await?;
        bindings
            .nats_sink_sink_sink()
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
        store.data_mut().reach = self.reach(options);
        let opened = bindings
            .nats_sink_sink_sink()
            .nats_sink()
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
    bindings: NatsSinkComponent,
    /// `None` once closed.
    handle: Option<ResourceAny>,
    metrics: Metrics,
}

impl Sink {
    /// The guest's sink for the next call, with the call's CPU clock started.
    fn start_call(&mut self) -> Result<ResourceAny, HostError> {
        let handle = self
            .handle
            .ok_or_else(|| HostError::Sink(SinkError::Closed("the sink was closed".into())))?;
        arm(&mut self.store);
        Ok(handle)
    }

    /// Start checkpoint `id`: rows written from now on carry the message ids
    /// `<sink_id>:<id>:<position>`, so a replay of the same checkpoint is deduplicated.
    pub async fn begin_checkpoint(&mut self, id: u64) -> Result<(), HostError> {
        let handle = self.start_call()?;
        let result = self
            .bindings
            .nats_sink_sink_sink()
            .nats_sink()
            .call_begin_checkpoint(&mut self.store, handle, id)
            .await
            .map(Ok);
        self.settle("begin-checkpoint", result)
    }

    /// Encode and publish `rows`, one message each. On `invalid-row`, the rows before the bad
    /// one were published; nothing at or after it was.
    pub async fn write(&mut self, rows: &Rows) -> Result<(), HostError> {
        let handle = self.start_call()?;
        let result = self
            .bindings
            .nats_sink_sink_sink()
            .nats_sink()
            .call_write(&mut self.store, handle, rows)
            .await;
        let outcome = self.settle("write", result);
        self.metrics.written(rows.len(), &outcome);
        outcome
    }

    /// Return once everything written since the last flush is confirmed by NATS.
    pub async fn flush(&mut self) -> Result<(), HostError> {
        let started = Instant::now();
        let handle = self.start_call()?;
        let result = self
            .bindings
            .nats_sink_sink_sink()
            .nats_sink()
            .call_flush(&mut self.store, handle)
            .await;
        let outcome = self.settle("flush", result);
        self.metrics.flushed(started.elapsed(), &outcome);
        outcome
    }

    /// Take in the connection's counters. A trap leaves the instance unusable, so the sink
    /// closes itself.
    fn settle(
        &mut self,
        call: &str,
        result: wasmtime::Result<Result<(), SinkError>>,
    ) -> Result<(), HostError> {
        self.metrics.transport(self.store.data().stats);
        match result {
            Ok(outcome) => outcome.map_err(HostError::Sink),
            Err(trap) => {
                self.handle = None;
                Err(trapped(&self.store, call, "; the sink is closed", trap))
            }
        }
    }

    /// The sink's metrics; a clone stays live (for a scrape endpoint) while the sink works.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Drop the guest's sink (closing its connection) and the store.
    pub async fn close(mut self) -> Result<(), HostError> {
        if let Some(handle) = self.handle.take() {
            arm(&mut self.store);
            handle
                .resource_drop_async(&mut self.store)
                .await
                .map_err(|e| HostError::runtime("closing the sink", e))?;
        }
        Ok(())
    }
}
