"""Rows with their operation, for `Sink.write_changes`: RisingWave's `Op`, as the WIT's `op`."""

from __future__ import annotations

import enum
from typing import Any


class Op(str, enum.Enum):
    """A row's operation. An update is a pair: `UPDATE_DELETE` (the old row) right before
    `UPDATE_INSERT` (the new one), in the same write."""

    INSERT = "insert"
    DELETE = "delete"
    UPDATE_DELETE = "update_delete"
    UPDATE_INSERT = "update_insert"

    @property
    def wit(self) -> str:
        """The WIT enum case's name."""
        return self.value.replace("_", "-")


class NotAChange(ValueError):
    """A change that is not `(op, row)` with a known op."""


def split_change(change: Any) -> tuple[str, Any]:
    """`(op, row)` as the WIT op's name and the row. The op is an `Op` or its value
    (`"insert"`, `"delete"`, `"update_delete"`, `"update_insert"`); nothing else is guessed at."""
    if not isinstance(change, (tuple, list)) or len(change) != 2:
        raise NotAChange(f"a change is a pair (op, row), not {type(change).__name__}")
    op, row = change
    if isinstance(op, Op):
        return op.wit, row
    if isinstance(op, str):
        try:
            # The text itself, not a subclass's own equality or hash: the lookup is by value.
            return Op(str.__str__(op)).wit, row
        except ValueError:
            pass
    names = ", ".join(repr(o.value) for o in Op)
    raise NotAChange(f"the operation {op!r} is not one of {names}")
