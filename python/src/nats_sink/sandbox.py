"""The limits around each sink's component instance, as the Rust host sets them: memory the
guest may grow to, and how long one call into it may run. Their defaults come from the shared
policy description (`policy.json`, generated from the Rust host's own constants).

The CPU bound is wasmtime's epoch interruption: one thread per process advances the engine's
epoch every 10 ms, and each call may run that many ticks before it traps. Unlike the Rust
host's, it counts the call's wall time, the host callbacks inside it included (they do no I/O:
messages go to an outbox, sent after the call).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from .policy import POLICY

TICK_SECONDS = 0.01
_DEFAULTS = POLICY["sandbox"]
# The CLI's ranges for --memory-limit-mib and --cpu-limit-ms.
_MAX_MEMORY_MIB = 4096
_MAX_CPU_MS = 3_600_000


@dataclass(frozen=True)
class Limits:
    """What one sink's component instance may use."""

    memory_mib: int = _DEFAULTS["memory_limit_bytes"] >> 20
    cpu_ms: int = _DEFAULTS["cpu_limit_ms"]

    def __post_init__(self) -> None:
        for name, value, top in (("memory_mib", self.memory_mib, _MAX_MEMORY_MIB), ("cpu_ms", self.cpu_ms, _MAX_CPU_MS)):
            if type(value) is not int or not 1 <= value <= top:
                raise ValueError(f"Limits.{name} must be an integer from 1 to {top}, not {value!r}")

    @property
    def ticks(self) -> int:
        return max(1, round(self.cpu_ms / 1000 / TICK_SECONDS))


_ticking: set[int] = set()
_ticking_lock = threading.Lock()


def start_ticking(engine: Any) -> None:
    """Advance `engine`'s epoch every tick, from a daemon thread, for the process's life."""
    with _ticking_lock:
        if id(engine) in _ticking:
            return
        _ticking.add(id(engine))
    def tick() -> None:
        while True:
            time.sleep(TICK_SECONDS)
            engine.increment_epoch()

    threading.Thread(target=tick, name="nats-sink-epoch", daemon=True).start()


def arm(store: Any, limits: Limits) -> None:
    """Before a call: it may run `limits.ticks` epochs from now."""
    store.set_epoch_deadline(limits.ticks)
