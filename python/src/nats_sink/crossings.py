"""A write's rows in bounded crossings into the component.

wasmtime-py hands a component value across as one C value per element (a `list<u8>`'s every
byte included, 32 bytes each), and wasmtime caps what one call may lift into the host (its
hostcall fuel): one crossing of a few MB of rows, or of the messages the guest publishes for
them, traps and kills the instance. So rows are converted and sent a crossing at a time, each
bounded both in what goes in (the rows) and in what can come back (the messages the guest
publishes for them), and the host's memory stays within a small multiple of one crossing.

What comes back is bounded from the row without encoding it: its JSON text is at most its
values' bytes with every escape counted, or the longest text of a fixed-size value
(`values.text_bound`, `values._SCALAR_TEXT`), plus each value's key; each header may repeat that text and the subject up to its 4000 bytes; and no message
the guest publishes passes the server's max_payload (plus its subject), which caps any row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Optional, Sequence

from . import errors
from .changes import NotAChange, split_change
from .schema import DataType, ListType, StructType
from .values import RowsBuilder, ValueRefused, row_nodes

# What one crossing may carry, in the bounds below (bytes as the guest sees them). Each byte
# costs about 150 bytes of host memory on its way (C and Rust values in and out), so these
# bound the host's memory to some 40 MB whatever the write's size.
CROSSING_IN_BYTES = 256 << 10
CROSSING_OUT_BYTES = 256 << 10
CROSSING_ROWS = 4096
# No single row may need more than this in one crossing either way: wasmtime's hostcall fuel
# (128 MiB, some 48 bytes a lifted value) lets the guest publish one message of 2.7 MB, not 2.8.
ROW_MAX_BYTES = 2_000_000
_MAX_SUBJECT_BYTES = 4_000  # the guest's bound on a rendered subject
_MESSAGE_OVERHEAD = 160  # a message id (a sink_id of up to 64 bytes), the header framing, its record
_IN_PER_VALUE = 32  # a value's share of the crossing in, besides its bytes (counted as bytes)


def _field_names(ty: DataType) -> Iterator[str]:
    if isinstance(ty, StructType):
        for name, field in ty.fields:
            yield name
            yield from _field_names(field)
    elif isinstance(ty, ListType):
        yield from _field_names(ty.element)


@dataclass(frozen=True)
class Bounds:
    """How much text a row can become, from the schema and the options (templates)."""

    per_value: int  # text per value besides its own: its key (escaped), colon and comma
    headers: int  # each header template may repeat the row's text
    fixed: int  # the options' own text (literal parts of the subject and headers), and framing

    @staticmethod
    def of(columns: Sequence[tuple[str, DataType]], options: Sequence[tuple[str, str]]) -> "Bounds":
        names = [n for n, _ in columns] + [n for _, t in columns for n in _field_names(t)]
        longest = max((len(n.encode("utf-8", "surrogatepass")) for n in names), default=0)
        templates = [(k, v) for k, v in options if k == "subject" or k.startswith("headers.")]
        headers = len(templates) - sum(1 for k, _ in templates if k == "subject")
        literal = sum(len(k.encode()) + len(v.encode()) for k, v in templates)
        return Bounds(per_value=4 + 6 * longest, headers=headers, fixed=literal + _MESSAGE_OVERHEAD)

    def out_bytes(self, text_bytes: int, values: int, max_payload: int) -> int:
        """At most what the guest can publish for a row whose values are at most `text_bytes`
        of JSON (keys aside): its payload, headers and subject."""
        text = text_bytes + self.per_value * values
        bound = (1 + self.headers) * text + min(text, _MAX_SUBJECT_BYTES) + self.fixed
        return min(bound, max_payload + _MAX_SUBJECT_BYTES + _MESSAGE_OVERHEAD)


def _too_large(row_bytes: int, crossing_bytes: int, max_payload: int) -> str:
    if row_bytes > max_payload:  # the guest would refuse it too, once it had crossed
        return f"its values alone are {row_bytes} bytes, over the server's max_payload of {max_payload} bytes"
    return (f"the row is too large for the Python host: it could take {crossing_bytes} bytes to cross into or out "
            f"of the component, over the {ROW_MAX_BYTES} one call may carry (wasmtime's hostcall limit); the CLI "
            "and the Rust host take it")


@dataclass
class Crossing:
    """Rows for one call of the guest's `write`; `first` is the first one's index in the write.
    `refused` is a row the host refused after these, which ends the write."""

    first: int
    rows: RowsBuilder
    refused: Optional[errors.InvalidRow] = None


def crossings(columns: Sequence[tuple[str, DataType]], rows: Iterable[Any], bounds: Bounds,
              max_payload: int, *, changes: bool = False) -> Iterator[Crossing]:
    """The rows, converted lazily, in crossings within the bounds; a row the host refuses (or
    one too large for any crossing) ends the last crossing with its refusal. With `changes`,
    each item is `(op, row)`, and an update pair never straddles two crossings (the guest
    takes the pair within one batch)."""
    batch, first, index = RowsBuilder(), 0, 0
    held: Optional[tuple[list[Any], int, int]] = None  # the last row's nodes and bounds, while it is an update-delete
    in_bytes = out_bytes = 0
    iterator = iter(rows)
    while True:
        try:
            row = next(iterator)
        except StopIteration:
            break
        except Exception as e:  # noqa: BLE001 - the caller's iterable raised: the rows before it stand
            yield Crossing(first, batch, errors.InvalidRow(index, "", f"reading the rows raised {type(e).__name__}: {e}"))
            return
        op = "insert"
        try:
            if changes:
                op, row = split_change(row)
            nodes = row_nodes(columns, row)
        except NotAChange as e:
            yield Crossing(first, batch, errors.InvalidRow(index, "", str(e)))
            return
        except ValueRefused as e:
            yield Crossing(first, batch, errors.InvalidRow(index, e.column, e.message))
            return
        data_before, values_before = batch.data_len, batch.value_count
        text = batch.push(nodes, op)
        values = batch.value_count - values_before
        row_in = batch.data_len - data_before + _IN_PER_VALUE * values
        row_out = bounds.out_bytes(text, values, max_payload)
        if max(row_in, row_out) > ROW_MAX_BYTES:
            row_bytes = batch.data_len - data_before
            batch.pop()
            yield Crossing(first, batch, errors.InvalidRow(index, "", _too_large(row_bytes, max(row_in, row_out), max_payload)))
            return
        if len(batch) > 1 and (in_bytes + row_in > CROSSING_IN_BYTES or out_bytes + row_out > CROSSING_OUT_BYTES
                               or len(batch) > CROSSING_ROWS):
            batch.pop()
            carried = op == "update-insert" and held is not None and len(batch) > 1
            if carried:
                batch.pop()  # its update-delete goes with it
            yield Crossing(first, batch)
            batch, first = RowsBuilder(), index - carried
            in_bytes = out_bytes = 0
            if carried and held is not None:
                batch.push(held[0], "update-delete")
                in_bytes, out_bytes = held[1], held[2]
            batch.push(nodes, op)
        in_bytes += row_in
        out_bytes += row_out
        held = (nodes, row_in, row_out) if op == "update-delete" else None
        index += 1
    if len(batch):
        yield Crossing(first, batch)
