//! The sandbox around each sink's guest: a memory limit, and a CPU clock that counts guest
//! code only (the host's I/O is left out), checked on every tick of the engine's epoch.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::{Engine, PoolingAllocationConfig, ResourceLimiter};

/// Memory a sink's guest may grow to, unless the caller says otherwise.
pub const DEFAULT_MEMORY_LIMIT: usize = 256 << 20;
/// Time one call may run guest code (host I/O excluded), unless the caller says otherwise.
pub const DEFAULT_CPU_LIMIT: Duration = Duration::from_secs(30);
/// How often the engine's epoch advances, and so how often a running guest is checked.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// wasmtime's pooling allocator with slots for `sinks` instances of the component at once,
/// each memory slot sized to `memory_limit`. Instantiation then reuses a warm slot instead of
/// mapping fresh memory; an instance past the count fails to instantiate.
pub(crate) fn pool(sinks: u32, memory_limit: usize) -> PoolingAllocationConfig {
    // The component is one core module with its memory, plus the small shim modules that
    // canonical lowering adds (a table each, no memory).
    const CORE_INSTANCES_PER_SINK: u32 = 4;
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(sinks)
        .total_core_instances(sinks.saturating_mul(CORE_INSTANCES_PER_SINK))
        .total_tables(sinks.saturating_mul(CORE_INSTANCES_PER_SINK))
        .total_memories(sinks)
        .total_stacks(sinks)
        .max_memory_size(memory_limit);
    pool
}

/// What one sink's guest may use.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) memory: usize,
    pub(crate) cpu: Duration,
}

/// Advances an engine's epoch every `EPOCH_TICK` until dropped, so that running guests get
/// checked against their CPU limit.
pub(crate) struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    pub(crate) fn start(engine: Engine) -> std::io::Result<EpochTicker> {
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

/// Which limit stopped a call, if one did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LimitHit {
    Memory,
    Cpu,
}

/// One store's sandbox: its limits, what hit them, and the current call's CPU clock.
pub(crate) struct Sandbox {
    pub(crate) limits: Limits,
    /// Set when the guest asked for more memory than its limit, so its trap can be explained.
    memory_limit_hit: bool,
    /// Set when a call ran guest code longer than its limit.
    cpu_limit_hit: bool,
    /// When the current call into the guest began, and how much of it the host spent on I/O.
    call_started: Instant,
    pub(crate) host_time: Duration,
}

impl Sandbox {
    pub(crate) fn new(limits: Limits) -> Sandbox {
        Sandbox {
            limits,
            memory_limit_hit: false,
            cpu_limit_hit: false,
            call_started: Instant::now(),
            host_time: Duration::ZERO,
        }
    }

    /// Start the clock of a call into the guest.
    pub(crate) fn start_call(&mut self) {
        self.call_started = Instant::now();
        self.host_time = Duration::ZERO;
    }

    /// On an epoch tick: the guest time of the current call, as an error once over the limit.
    pub(crate) fn check_cpu(&mut self) -> wasmtime::Result<()> {
        let guest_time = self.call_started.elapsed().saturating_sub(self.host_time);
        if guest_time > self.limits.cpu {
            self.cpu_limit_hit = true;
            return Err(wasmtime::Error::msg(format!(
                "the guest ran for {} ms in one call",
                guest_time.as_millis()
            )));
        }
        Ok(())
    }

    /// The limit a trapped call hit, if any.
    pub(crate) fn limit_hit(&self) -> Option<LimitHit> {
        if self.memory_limit_hit {
            Some(LimitHit::Memory)
        } else if self.cpu_limit_hit {
            Some(LimitHit::Cpu)
        } else {
            None
        }
    }
}

impl ResourceLimiter for Sandbox {
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
