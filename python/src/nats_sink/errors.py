"""Exceptions mirroring the WIT's `sink-error` variant, one class per case."""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from typing import Any


class SinkError(Exception):
    """Every error the sink raises."""


@dataclass(frozen=True)
class OptionProblem:
    name: str
    message: str


class InvalidOptions(SinkError):
    """The options are wrong; `problems` lists every problem found."""

    def __init__(self, problems: list[OptionProblem]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{p.name}: {p.message}" for p in problems))


class InvalidSchema(SinkError):
    """An unknown type, a duplicate column, bad struct syntax."""


class InvalidRow(SinkError):
    """A row does not match the schema. `row` indexes the batch given to `write`; the rows
    before it were published, it and the rows after it were not."""

    def __init__(self, row: int, column: str, message: str) -> None:
        self.row, self.column, self.message = row, column, message
        where = f", column `{column}`" if column else ""
        super().__init__(f"row {row}{where}: {message}")


class DeliveryError(SinkError):
    """A delivery failure, as the WIT's `failure` record carries it.

    `core_in_doubt` is True when core NATS messages sent since the last successful flush were
    not confirmed and may be lost: core NATS keeps and resends nothing, so only replaying them
    on a new connection can deliver them. Decide on the class and this flag, never on the text.
    """

    def __init__(self, message: str, core_in_doubt: bool = False) -> None:
        self.message, self.core_in_doubt = message, core_in_doubt
        super().__init__(message)


class ConnectionError(DeliveryError, builtins.ConnectionError):
    """The NATS connection could not be made or was lost."""


class PublishError(DeliveryError):
    """A publish was refused for good (permission, max_payload, a stream's limits)."""


class TimeoutError(DeliveryError, builtins.TimeoutError):
    """Something did not answer within its time limit."""


#: What can close a sink, as the WIT's `closed-after` names it.
CLOSED_AFTER = ("close", "connection", "publish", "timeout", "interrupted")


class Closed(SinkError):
    """The sink was used after a failure or after close.

    `after` says what closed it: ``"close"`` (the caller closed it), ``"connection"``,
    ``"publish"`` or ``"timeout"`` (the first delivery failure of that kind), or
    ``"interrupted"`` (a call was cancelled part way, or the component trapped).
    `core_in_doubt` is the closing failure's flag (see `DeliveryError`); `message` says why.
    """

    def __init__(self, message: str, after: str = "close", core_in_doubt: bool = False) -> None:
        if after not in CLOSED_AFTER:
            raise ValueError(f"closed after {after!r}: not one of {CLOSED_AFTER}")
        self.message, self.after, self.core_in_doubt = message, after, core_in_doubt
        super().__init__(message)


def closed_after(error: SinkError, message: str) -> Closed:
    """The `Closed` a sink raises once `error` has closed it."""
    kinds = ((ConnectionError, "connection"), (PublishError, "publish"), (TimeoutError, "timeout"))
    after = next((kind for cls, kind in kinds if isinstance(error, cls)), "interrupted")
    return Closed(message, after, getattr(error, "core_in_doubt", False))


class ComponentError(SinkError):
    """A call into the component trapped or hit one of its limits; the sink is closed."""


class CpuLimit(ComponentError):
    """A call into the component ran past the sink's CPU limit (`Limits.cpu_ms`)."""


def from_wit(err: Any) -> SinkError:
    """A `sink-error` variant as the guest returned it."""
    tag, val = err.tag, err.payload
    if tag == "invalid-options":
        return InvalidOptions([OptionProblem(p.name, p.message) for p in val])
    if tag == "invalid-schema":
        return InvalidSchema(val)
    if tag == "invalid-row":
        return InvalidRow(val.row, val.column, val.message)
    if tag == "closed":
        return Closed(val.cause.message, str(val.after), getattr(val.cause, "core-in-doubt"))
    cls = {"connection": ConnectionError, "publish": PublishError, "timeout": TimeoutError}[tag]
    return cls(val.message, getattr(val, "core-in-doubt"))


def failure(message: str, core_in_doubt: bool = False) -> Any:
    """The WIT's `failure` record, for a `transport-error` the host returns to the guest."""
    from wasmtime.component import Record

    record = Record()
    record.message = message
    setattr(record, "core-in-doubt", core_in_doubt)
    return record
