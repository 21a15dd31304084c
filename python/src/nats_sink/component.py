"""The component: loaded once, instantiated per sink, its exports called synchronously.

The guest imports `nats:sink/transport`; an instance links it to a `HostTransport`, whose
methods the guest calls synchronously from inside `open`, `write` and `flush`.
"""

from __future__ import annotations

import os
import threading
import time
from importlib import resources
from pathlib import Path
from typing import Any, Optional, Protocol

from wasmtime import Engine, Store, Trap, WasmtimeError
from wasmtime.component import Component, Linker, Record, ResourceAny, ResourceHost, ResourceType, Variant

from . import _speedups, compile_cache, errors, sandbox

# Packed rows are `value` variants and byte lists; wasmtime-py's own conversions of those are
# slow enough to be nearly all of the host's time (see _speedups).
_speedups.install()

TRANSPORT = "nats:sink/transport@0.4.0"
ENCODER = "nats:sink/encoder@0.4.0"
_CONNECTION_TYPE = 1  # our host resource type id for `connection`


class HostTransport(Protocol):
    """The host side of the transport import. Errors are `transport-error` variants."""

    def open(self, config: Record) -> Optional[Variant]: ...
    def publish(self, batch: Record) -> Optional[Variant]: ...
    def flush(self) -> Optional[Variant]: ...
    def max_payload(self) -> int: ...
    def dropped(self) -> None: ...


class _Refuse:
    """A transport for calls that must not connect (describe, validate, resolve)."""

    def open(self, config: Record) -> Optional[Variant]:
        return Variant("connection", errors.failure("this instance does not connect"))

    def publish(self, batch: Record) -> Optional[Variant]:
        return Variant("publish", errors.failure("not connected"))

    def flush(self) -> Optional[Variant]:
        return Variant("connection", errors.failure("not connected"))

    def max_payload(self) -> int:
        return 0

    def dropped(self) -> None:
        pass


_lock = threading.Lock()
_loaded: Optional[tuple[Engine, Component]] = None


def component_path() -> Path:
    """`$NATS_SINK_COMPONENT`, else the component shipped inside this package."""
    env = os.environ.get("NATS_SINK_COMPONENT")
    if env:
        return Path(env)
    return Path(str(resources.files("nats_sink").joinpath("nats-sink.wasm")))


def new_engine() -> Engine:
    """An engine as every sink's: the compile cache, and epochs ticking for the CPU bound."""
    config = compile_cache.engine_config()
    config.epoch_interruption = True
    engine = Engine(config)
    sandbox.start_ticking(engine)
    return engine


def _load() -> tuple[Engine, Component]:
    global _loaded
    with _lock:
        if _loaded is None:
            path = component_path()
            if not path.is_file():
                raise errors.ComponentError(f"no component at {path}: build it with `just build`, then reinstall")
            engine = new_engine()
            try:
                _loaded = (engine, Component.from_file(engine, str(path)))
            except WasmtimeError as e:
                raise errors.ComponentError(f"{path} is not a component this host can load: {e}") from None
        return _loaded


class Instance:
    """One instance of the component with its own store, linked to `transport`."""

    def __init__(self, transport: Optional[HostTransport] = None, limits: Optional[sandbox.Limits] = None) -> None:
        engine, component = _load()
        self.transport: HostTransport = transport or _Refuse()
        self.limits = limits or sandbox.Limits()
        self.store = Store(engine)
        self.store.set_limits(memory_size=self.limits.memory_mib << 20)
        sandbox.arm(self.store, self.limits)
        linker = Linker(engine)
        with linker.root() as root:
            with root.add_instance(TRANSPORT) as t:
                t.add_resource("connection", ResourceType.host(_CONNECTION_TYPE), self._dtor)
                t.add_func("[static]connection.open", self._open)
                t.add_func("[method]connection.publish", self._publish)
                t.add_func("[method]connection.flush", self._flush)
                t.add_func("[method]connection.max-payload", self._max_payload)
        started = time.monotonic()
        try:
            self.instance = linker.instantiate(self.store, component)
        except (WasmtimeError, Trap) as e:
            if self._past_deadline(started):
                raise errors.CpuLimit(
                    f"instantiating the component ran past the sink's CPU limit of {self.limits.cpu_ms} ms"
                ) from None
            raise errors.ComponentError(f"the component could not be instantiated: {e}") from None
        self._sink = self.instance.get_export_index(self.store, ENCODER)
        self._funcs: dict[str, Any] = {}

    def _past_deadline(self, started: float) -> bool:
        # wasmtime-py gives a component's trap no code, but epochs tick no faster than
        # sandbox.TICK_SECONDS: a call that trapped once its whole budget had passed met its
        # epoch deadline.
        return time.monotonic() - started >= self.limits.ticks * sandbox.TICK_SECONDS

    # The transport, as the guest calls it. A borrowed handle must be dropped before returning.
    def _dtor(self, _store: Any, _rep: int) -> None:
        self.transport.dropped()

    def _open(self, _store: Any, config: Record) -> Any:
        err = self.transport.open(config)
        return err if err is not None else ResourceHost.own(0, _CONNECTION_TYPE)

    def _publish(self, store: Any, conn: ResourceAny, batch: Record) -> Optional[Variant]:
        conn.drop(store)
        return self.transport.publish(batch)

    def _flush(self, store: Any, conn: ResourceAny) -> Optional[Variant]:
        conn.drop(store)
        return self.transport.flush()

    def _max_payload(self, store: Any, conn: ResourceAny) -> int:
        conn.drop(store)
        return self.transport.max_payload()

    def call(self, name: str, *args: Any) -> Any:
        func = self._funcs.get(name)
        if func is None:
            index = self.instance.get_export_index(self.store, name, self._sink)
            func = self.instance.get_func(self.store, index)
            self._funcs[name] = func
        sandbox.arm(self.store, self.limits)
        started = time.monotonic()
        try:
            result = func(self.store, *args)
            func.post_return(self.store)
        except (WasmtimeError, Trap) as e:
            # A trap leaves the instance unusable: the caller closes its sink.
            if self._past_deadline(started):
                raise errors.CpuLimit(
                    f"the component's `{name}` ran past the sink's CPU limit of {self.limits.cpu_ms} ms"
                ) from None
            raise errors.ComponentError(f"the component's `{name}` trapped: {e}") from None
        return result

    def drop(self, handle: ResourceAny) -> None:
        try:
            handle.drop(self.store)
        except (WasmtimeError, Trap) as e:
            raise errors.ComponentError(f"the sink's handle could not be dropped: {e}") from None
