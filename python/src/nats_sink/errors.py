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


class ConnectionError(SinkError, builtins.ConnectionError):
    """The NATS connection could not be made or was lost."""


class PublishError(SinkError):
    """A publish was refused or not confirmed (permission, max_payload, stream error)."""


class TimeoutError(SinkError, builtins.TimeoutError):
    """Something did not answer within its time limit."""


class Closed(SinkError):
    """The sink was used after a failure or after close."""


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
    return {"connection": ConnectionError, "publish": PublishError, "timeout": TimeoutError, "closed": Closed}[tag](val)
