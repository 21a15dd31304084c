r"""Arrow record batches in bounded crossings: one uncompressed IPC stream per `write-arrow` call.

The bounds are counted per row from the columns without converting a value to Python. What can
come back is bounded by the text the guest can publish for a row (each value's longest text,
each key escaped, as `crossings.Bounds.out_bytes` adds subject and headers). A text's escapes
are first bounded at their worst (every byte `\u00XX`, six bytes), which takes no scan; only
when that puts some row past `ROW_MAX_BYTES` are the escapes counted as the guest writes them.
What goes in is first guessed from the row's share of the IPC bytes (its fixed-width values,
text, bytes and offsets), then measured: each slice is serialized before it joins a stream, and
halved until the stream stays within `CROSSING_IN_BYTES`. A row past `ROW_MAX_BYTES` either way,
whatever rows are beside it, ends the write with its refusal, after the rows before it.

The streams going in and the batches coming back cross as `packed-bytes` words (see
`packed.py`), about 10 bytes of host memory a byte on their way (C and Rust values of 8 bytes
each, and a copy), so these bounds are wider than `write`'s, whose rows cross value by value:
some 30 MB of host memory per crossing whatever the write's size.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Any, Iterator, Optional, Sequence

from . import errors
from .arrow_input import plain_batch, plain_schema, pyarrow
from .crossings import (
    _MAX_SUBJECT_BYTES,
    _MESSAGE_OVERHEAD,
    CROSSING_ROWS,
    ROW_MAX_BYTES,
    Bounds,
    _too_large,
)
from .schema import DataType, ListType, StructType
from .values import _ESCAPED, LONG_ESCAPED, SHORT_ESCAPED

# What one write-arrow crossing may carry in (its IPC stream) and out (what the guest may
# publish for its rows), in bytes.
CROSSING_IN_BYTES = 1 << 20
CROSSING_OUT_BYTES = 2 << 20

# The longest text of a fixed-width value of each sink type (values._SCALAR_TEXT by type name);
# a numeric from a decimal or an integer is at most a 96-bit mantissa with a sign and a point.
_FIXED_TEXT = {
    "boolean": 5, "smallint": 6, "integer": 11, "bigint": 20, "serial": 24, "real": 32, "double": 32,
    "date": 16, "time": 24, "timestamp": 36, "timestamptz": 40, "interval": 72, "uuid": 40, "numeric": 72,
}  # fmt: skip
_UNKNOWN_TEXT = 72  # a type the guest will refuse: any bound serves until it does
_END_OF_STREAM = 8  # the stream's last message: a continuation marker and a zero length


def _batch_framing(schema: Any) -> int:
    """At most what one record batch message adds beside its rows' bytes: its metadata (that of
    an empty batch), and as much again for its buffers' padding (under 8 bytes each, beside the
    16 bytes of metadata each has)."""
    pa = pyarrow()
    alone, with_batch = pa.BufferOutputStream(), pa.BufferOutputStream()
    pa.ipc.new_stream(alone, schema).close()
    writer = pa.ipc.new_stream(with_batch, schema)
    # Empty columns of null arrays: pyarrow builds no empty union from a list.
    empty = pa.RecordBatch.from_arrays([pa.nulls(0, f.type) for f in schema], schema=schema)
    writer.write_batch(empty)
    writer.close()
    return 2 * (with_batch.tell() - alone.tell())


_NOT_ESCAPED = bytes(b for b in range(256) if b not in _ESCAPED)
# The guest's two escape lengths as regular expressions over text.
_SHORT_CLASS = "[" + "".join(f"\\x{b:02x}" for b in SHORT_ESCAPED) + "]"
_LONG_CLASS = "[" + "".join(f"\\x{b:02x}" for b in LONG_ESCAPED) + "]"


def _key_text(name: str) -> int:
    """`"name":` and its comma, with every escape counted."""
    raw = name.encode("utf-8", "surrogatepass")
    return len(raw) + 5 * len(raw.translate(None, _NOT_ESCAPED)) + 4


class _Columns:
    """Per-row bounds of one record batch, as int64 arrays (or ints, alike for every row);
    with `exact`, each text's escapes counted, else bounded at their worst."""

    def __init__(self, exact: bool) -> None:
        self.pa = pyarrow()
        self.pc = self.pa.compute
        self.exact = exact

    def add(self, a: Any, b: Any) -> Any:
        if isinstance(a, int) and isinstance(b, int):
            return a + b
        return self.pc.add(a, b)

    def lengths(self, array: Any) -> Any:
        return self.pc.fill_null(self.pc.binary_length(array), 0).cast(self.pa.int64())

    def escapes(self, array: Any) -> Any:
        r"""The bytes each text's escapes add, as the guest escapes: one for `"`, `\` and the
        control bytes with a short form (`\n`), five for the others (`\u0001`)."""
        pc, int64 = self.pc, self.pa.int64()
        short = pc.fill_null(pc.count_substring_regex(array, _SHORT_CLASS), 0).cast(int64)
        long = pc.fill_null(pc.count_substring_regex(array, _LONG_CLASS), 0).cast(int64)
        return pc.add(short, pc.multiply(long, 5))

    def per_element(self, total: Any, array: Any) -> Any:
        return self.pa.array([total] * len(array), self.pa.int64()) if isinstance(total, int) else total

    def value(self, array: Any, sink: Optional[DataType]) -> tuple[Any, Any]:
        """(text out, bytes in) for each element of `array`, a value of sink type `sink`."""
        pa, t = self.pa, self.pa.types
        ty = array.type
        if isinstance(ty, pa.ExtensionType):
            return self.value(array.storage, sink)
        if t.is_string(ty) or t.is_large_string(ty):
            lengths = self.lengths(array)
            if sink == "varchar" and self.exact:  # escaped, and quoted
                text = self.pc.add(self.pc.add(lengths, self.escapes(array)), 2)
            elif sink == "varchar":  # every byte at most a six-byte escape, and quoted
                text = self.pc.add(self.pc.multiply(lengths, 6), 2)
            else:  # numeric and jsonb text (twice: jsonb's margin, as values.text_bound)
                text = self.pc.add(self.pc.multiply(lengths, 6 if sink is None else 2), 6)
            return text, self.pc.add(lengths, 8)
        if t.is_binary(ty) or t.is_large_binary(ty):  # `"\\x` and two hex digits a byte
            lengths = self.lengths(array)
            return self.pc.add(self.pc.multiply(lengths, 6 if sink not in (None, "bytea") else 2), 6), self.pc.add(lengths, 8)
        if t.is_fixed_size_binary(ty):
            return max(2 * ty.byte_width + 6, _FIXED_TEXT.get(sink, 0) if isinstance(sink, str) else 0), ty.byte_width
        if t.is_list(ty) or t.is_large_list(ty):
            element = sink.element if isinstance(sink, ListType) else None
            text, size = self.value(array.values, element)
            # Each element's text and a comma; the brackets; summed over each row's run.
            text_runs = self._runs(self.add(text, 1), array)
            size_runs = self._runs(size, array)
            return self.pc.add(text_runs, 2 + 4), self.pc.add(size_runs, 8)
        if t.is_struct(ty):
            fields = dict(sink.fields) if isinstance(sink, StructType) else {}
            text: Any = 2 + 4
            size: Any = 1
            for i in range(ty.num_fields):
                field = ty.field(i)
                child_text, child_size = self.value(array.field(i), fields.get(field.name))  # offset applied
                text = self.add(text, self.add(child_text, _key_text(field.name)))
                size = self.add(size, child_size)
            return text, size
        try:
            width = max(ty.bit_width, 1)
        except ValueError:  # a type without a fixed width the guest reads none of (maps, unions)
            return 6 * array.nbytes + _UNKNOWN_TEXT, array.nbytes + 8
        fixed = _FIXED_TEXT.get(sink, _UNKNOWN_TEXT) if isinstance(sink, str) else _UNKNOWN_TEXT
        return max(fixed, 4), width // 8 + 1

    def _runs(self, per_element: Any, array: Any) -> Any:
        """Per row of a list array, the sum of `per_element` over that row's elements."""
        pa, pc = self.pa, self.pc
        offsets = array.offsets.cast(pa.int64())
        if isinstance(per_element, int):
            return pc.multiply(pc.subtract(offsets[1:], offsets[:-1]), per_element)
        sums = pc.cumulative_sum(pa.concat_arrays([pa.array([0], pa.int64()), self.per_element(per_element, array.values)]))
        return pc.subtract(pc.take(sums, offsets[1:]), pc.take(sums, offsets[:-1]))


def row_bounds(batch: Any, columns: Sequence[tuple[str, DataType]], bounds: Bounds,
               max_payload: int) -> tuple[list[int], list[int], Optional[int]]:
    """Running sums (from 0) of each row's bytes in and its most text out, for bisecting:
    with escapes at their worst, or counted where that bound would refuse a row; and the first
    row past `ROW_MAX_BYTES` either way, if any (refused whatever rows are beside it)."""
    sizes, outs, first_too_large = _row_bounds(batch, columns, bounds, max_payload, exact=False)
    if first_too_large is not None:
        sizes, outs, first_too_large = _row_bounds(batch, columns, bounds, max_payload, exact=True)
    return sizes, outs, first_too_large


def _row_bounds(batch: Any, columns: Sequence[tuple[str, DataType]], bounds: Bounds, max_payload: int,
                exact: bool) -> tuple[list[int], list[int], Optional[int]]:
    """`row_bounds`'s running sums, and its first row past `ROW_MAX_BYTES`."""
    helper = _Columns(exact)
    pa, pc = helper.pa, helper.pc
    sink_types = dict(columns)
    text: Any = 0
    size: Any = 0
    for i, field in enumerate(batch.schema):
        column_text, column_size = helper.value(batch.column(i), sink_types.get(field.name))
        text = helper.add(text, helper.add(column_text, _key_text(field.name)))
        size = helper.add(size, column_size)
    rows = batch.num_rows
    text_rows = helper.per_element(text + 2 if isinstance(text, int) else pc.add(text, 2), range(rows))
    # As Bounds.out_bytes: the payload, each header's copy, the subject, framing; never past
    # what the guest may publish at all.
    subject = pc.min_element_wise(text_rows, _MAX_SUBJECT_BYTES)
    out = pc.add(pc.add(pc.multiply(text_rows, 1 + bounds.headers), subject), bounds.fixed)
    out = pc.min_element_wise(out, max_payload + _MAX_SUBJECT_BYTES + _MESSAGE_OVERHEAD)
    size_rows = helper.per_element(size, range(rows)).cast(pa.int64())
    out = out.cast(pa.int64())
    zero = pa.array([0], pa.int64())
    too_large = pc.or_(pc.greater(size_rows, ROW_MAX_BYTES), pc.greater(out, ROW_MAX_BYTES))
    first = pc.index(too_large, True).as_py()
    return (pc.cumulative_sum(pa.concat_arrays([zero, size_rows])).to_pylist(),
            pc.cumulative_sum(pa.concat_arrays([zero, out])).to_pylist(), None if first < 0 else first)


@dataclass
class ArrowCrossing:
    """One IPC stream for `write-arrow`; `first` is its first row's index in the whole write.
    `refused` is a row the host refused after these, which ends the write."""

    first: int
    rows: int
    ipc: Any  # a pyarrow Buffer: crosses as `list<u8>` in one copy
    refused: Optional[errors.InvalidRow] = None


class _Stream:
    """An IPC stream being filled with slices, in the schema given."""

    def __init__(self, schema: Any, first: int) -> None:
        pa = pyarrow()
        self.sink = pa.BufferOutputStream()
        self.writer = pa.ipc.new_stream(self.sink, schema, options=pa.ipc.IpcWriteOptions(compression=None))
        self.first, self.rows = first, 0
        self.out_bytes = 0

    @property
    def in_bytes(self) -> int:
        """The stream's bytes so far, as written (its schema and every batch's framing too)."""
        return self.sink.tell()

    def add(self, batch: Any, out_bytes: int) -> None:
        self.writer.write_batch(batch)
        self.rows += batch.num_rows
        self.out_bytes += out_bytes

    def finish(self, refused: Optional[errors.InvalidRow] = None) -> ArrowCrossing:
        self.writer.close()
        return ArrowCrossing(self.first, self.rows, self.sink.getvalue(), refused)


_OP_FIELD = "__op"
_UPDATE_DELETE = 4  # RisingWave's `Op::to_i16` of an update-delete


def _update_deletes(batch: Any) -> frozenset[int]:
    """The rows of `batch` whose `__op` is an update-delete (none without the field): each must
    cross with the update-insert after it, which the guest reads within one stream."""
    if _OP_FIELD not in batch.schema.names:
        return frozenset()
    return frozenset(i for i, op in enumerate(batch.column(_OP_FIELD).to_pylist()) if op == _UPDATE_DELETE)


def _pairs_whole(batches: Iterator[Any], plain: Any) -> Iterator[Any]:
    """The batches in `plain`'s forms, none but the last ending on an update-delete: such a row
    moves to the front of the next batch, so a crossing never ends between the two rows of an
    update. The caller's iterator's exceptions pass through."""
    carry = None
    for batch in batches:
        batch = plain_batch(batch, plain)
        if carry is not None:  # (pyarrow's concat_batches is 19 and later; this is any)
            pa = pyarrow()
            joined = [pa.concat_arrays([a, b]) for a, b in zip(carry.columns, batch.columns)]
            batch, carry = pa.RecordBatch.from_arrays(joined, schema=batch.schema), None
        last = batch.num_rows - 1
        if last >= 0 and _update_deletes(batch.slice(last, 1)):
            carry, batch = batch.slice(last, 1), batch.slice(0, last)
        yield batch
    if carry is not None:
        yield carry


def arrow_crossings(schema: Any, batches: Iterator[Any], columns: Sequence[tuple[str, DataType]],
                    bounds: Bounds, max_payload: int) -> Iterator[ArrowCrossing]:
    """The batches' rows as IPC streams within the crossing bounds. The first stream always
    goes (with no rows if there are none), so the guest checks the schema. A stream never ends
    between an update-delete and the update-insert after it."""
    plain = plain_schema(schema)
    stream = _Stream(plain, 0)
    index = 0
    in_budget = CROSSING_IN_BYTES - _batch_framing(plain)
    batches = _pairs_whole(batches, plain)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            break
        except errors.SinkError:
            raise  # a batch of a type its column cannot take: the caller's refusal, as it is
        except Exception as e:  # noqa: BLE001 - the caller's stream failed: the rows before it stand
            yield stream.finish(errors.InvalidRow(index, "", f"reading the Arrow stream raised {type(e).__name__}: {e}"))
            return
        sizes, outs, too_large = row_bounds(batch, columns, bounds, max_payload)
        update_deletes = _update_deletes(batch)

        def whole_pairs(end: int, start: int) -> int:
            """`end`, moved so that the slice from `start` does not end on an update-delete."""
            if end < batch.num_rows and end - 1 in update_deletes:
                return end - 1 if end - 1 > start else end + 1
            return end

        # A row too large for one call is weighed alone, or with its update-delete if it is an
        # update's insert: the two stand or fall together (the guest blames the delete too).
        if too_large is not None and too_large - 1 in update_deletes:
            too_large -= 1
        start = 0
        while start < batch.num_rows:
            # The most rows from `start` that fit beside what the stream holds already; a row
            # too large for one call goes alone, to be refused below.
            room_in = in_budget - stream.in_bytes
            room_out = CROSSING_OUT_BYTES - stream.out_bytes
            alone = too_large if too_large is not None and too_large > start else batch.num_rows
            end = min(bisect.bisect_right(sizes, sizes[start] + room_in) - 1,
                      bisect.bisect_right(outs, outs[start] + room_out) - 1,
                      start + CROSSING_ROWS - stream.rows, batch.num_rows, alone)
            if too_large == start:
                end = start + 1
            if end <= start:
                if stream.rows:  # full: send it, and start the next one at this row
                    yield stream.finish()
                    stream = _Stream(plain, index)
                    continue
                end = start + 1  # a row past a crossing's bounds goes alone, if one call can take it
            # A slice ends after an update's insert, never between its two rows: the least it
            # holds is one row, or an update's two.
            end = whole_pairs(end, start)
            smallest = whole_pairs(start + 1, start)
            # The estimate is a first guess (a slice of nested lists can carry more than its
            # rows): what a slice adds to the stream is measured, and halved until it fits.
            while True:
                part = batch.slice(start, end - start)
                size = part.serialize().size
                if stream.in_bytes + size + _END_OF_STREAM <= CROSSING_IN_BYTES or end <= smallest:
                    break
                end = whole_pairs(max(start + (end - start) // 2, smallest), start)
            if stream.in_bytes + size + _END_OF_STREAM > CROSSING_IN_BYTES and stream.rows:
                yield stream.finish()
                stream = _Stream(plain, index)
                continue
            row_out = outs[end] - outs[start]
            if end <= smallest and max(size, row_out) > ROW_MAX_BYTES:
                why = _too_large(size, max(size, row_out), max_payload)
                if end - start == 2:  # an update: its delete is named, as the guest names it
                    why = f"with its update-insert (row {index + 1}), the update is too large: {why}"
                yield stream.finish(errors.InvalidRow(index, "", why))
                return
            stream.add(part, row_out)
            index += end - start
            start = end
    yield stream.finish()
