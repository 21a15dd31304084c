"""Speed-ups for wasmtime-py's component values, which the packed rows and batches need.

- A variant's cases: wasmtime-py lists them afresh through the C API for every value it lowers
  (about 0.5 ms for the WIT's `value` variant), which was nearly all of the Python host's time.
  A variant type never changes, so its cases (and whether it is tagged) are remembered on it.
- A record's fields: listed afresh the same way for every record value (the batch's messages,
  spans, headers), so a record type remembers them too, and lifts a record without decoding
  each field's name from C (wasmtime-py did so only to assert it).
- `list<u8>`: converted one byte at a time through ctypes. The bulk path lays out the very same
  C values (`wasmtime_component_val_t`, kind U8) with strided slice assignment straight into the
  C list, and reads them back the same way: no copy of the 32-bytes-a-byte layout is ever made
  in Python, and a buffer going in (bytes, a pyarrow Buffer) is read where it lies. It checks itself against wasmtime-py's own conversion first, both ways, and leaves
  wasmtime-py as it is if the two disagree (a future layout change).
- `packed-bytes` (bytes as `list<u64>` words and a count, the WIT's way around the cost above):
  words are laid out and read back the same strided way, 8 bytes a C value. Only a buffer
  lowers this way (a list of ints takes wasmtime-py's path), and only a record of exactly
  `words: list<u64>, len: u32` lifts its words as bytes, so no other list of u64 changes.
- A list of records of `u32`s (the batch's messages and headers: spans): lifted by reading the
  C values where they lie, a few reads per record, instead of one Python call per field. It
  was over half of `write_arrow`'s time. Used only where the C layout is the one it was written
  for (checked at install).
"""

from __future__ import annotations

import ctypes
import struct
from typing import Any, Callable

from wasmtime import _ffi as ffi
from wasmtime.component import _types

_VAL = ffi.wasmtime_component_val_t
_SIZE = ctypes.sizeof(_VAL)
_KIND = _VAL.kind.offset
_VALUE = _VAL.of.offset
_U8 = bytes([ffi.WASMTIME_COMPONENT_U8.value])
_U64 = bytes([ffi.WASMTIME_COMPONENT_U64.value])
_ENTRY = ctypes.sizeof(ffi.wasmtime_component_valrecord_entry_t)
_ENTRY_VAL = ffi.wasmtime_component_valrecord_entry_t.val.offset
_RECORD = ffi.WASMTIME_COMPONENT_RECORD.value
_U32 = ffi.WASMTIME_COMPONENT_U32.value
# A value's kind, then its list or record (size, data) or its u32, as `wasmtime_component_val_t`
# lays them out on a 64-bit little-endian machine.
_AGGREGATE = struct.Struct("<B7xQQ")
_LAYOUT_KNOWN = (
    _SIZE == 32 and _KIND == 0 and _VALUE == 8 and ctypes.sizeof(ctypes.c_void_p) == 8
    and ffi.wasmtime_component_vallist_t.size.offset == 0
    and ffi.wasmtime_component_vallist_t.data.offset == 8
    and ffi.wasmtime_component_valrecord_t.size.offset == 0
    and ffi.wasmtime_component_valrecord_t.data.offset == 8
    and _ENTRY_VAL == 16 and _ENTRY == 48 and struct.pack("=I", 1) == struct.pack("<I", 1)
)  # fmt: skip
_LEAF = "u32"


def _c_bytes(address: int, size: int) -> memoryview:
    """The C memory at `address` as a writable byte view (no copy)."""
    return memoryview((ctypes.c_ubyte * size).from_address(address)).cast("B")


def _list_to_c(val: Any, ptr: Any, kind: bytes, fmt: str) -> None:
    """A buffer of `fmt` items (`B` bytes, `Q` native 64-bit words) as a C list of values of
    `kind`, laid out with strided copies. Any contiguous buffer (bytes, a pyarrow Buffer) is
    read in place: its one copy is the strided assignment into the C list."""
    try:
        data = memoryview(val).cast("B")
    except TypeError:
        raise TypeError("expected a bytes-like value") from None
    width = struct.calcsize(fmt)
    n = len(data) // width
    if n * width != len(data):
        raise TypeError(f"a buffer of {len(data)} bytes is no whole number of {width}-byte items")
    raw = ffi.wasmtime_component_vallist_t()
    ffi.wasmtime_component_vallist_new_uninit(raw, n)
    if n:
        address = ctypes.cast(raw.data, ctypes.c_void_p).value
        ctypes.memset(address, 0, n * _SIZE)
        layout = _c_bytes(address, n * _SIZE)
        layout[_KIND::_SIZE] = kind * n
        items = layout.cast(fmt)
        items[_VALUE // width :: _SIZE // width] = data.cast(fmt)
        items.release()
        layout.release()
    data.release()
    ptr.contents.kind = ffi.WASMTIME_COMPONENT_LIST
    ptr.contents.of.list = raw


def _list_from_c(c: Any, kind: bytes, fmt: str) -> bytes:
    """A C list of values of `kind` as the bytes of its `fmt` items; the C list is freed
    either way."""
    assert c.kind == ffi.WASMTIME_COMPONENT_LIST.value
    try:
        n = c.of.list.size
        if n == 0:
            return b""
        width = struct.calcsize(fmt)
        layout = _c_bytes(ctypes.cast(c.of.list.data, ctypes.c_void_p).value, n * _SIZE)
        try:
            if bytes(layout[_KIND::_SIZE]) != kind * n:
                raise ValueError("a list holds a value of another kind")
            items = layout.cast(fmt)
            try:
                return items[_VALUE // width :: _SIZE // width].tobytes()
            finally:
                items.release()
        finally:
            layout.release()
    finally:
        ffi.wasmtime_component_vallist_delete(ctypes.byref(c.of.list))


def _to_c(val: Any, ptr: Any) -> None:
    _list_to_c(val, ptr, _U8, "B")


def _from_c(c: Any) -> bytes:
    return _list_from_c(c, _U8, "B")


def _words_to_c(val: Any, ptr: Any) -> None:
    """A buffer of native 64-bit words as a C `list<u64>`."""
    _list_to_c(val, ptr, _U64, "Q")


def _words_from_c(c: Any) -> bytes:
    """A C `list<u64>` as the bytes of its native words."""
    return _list_from_c(c, _U64, "Q")


def _is_packed_bytes(fields: Any) -> bool:
    """Whether a record's fields are the WIT's `packed-bytes`: `words: list<u64>, len: u32`."""
    return (
        len(fields) == 2 and fields[0][0] == "words" and fields[1][0] == "len"
        and isinstance(fields[0][1], _types.ListType) and isinstance(fields[0][1].element, _types.U64)
        and isinstance(fields[1][1], _types.U32)
    )  # fmt: skip


def _integer_record_plan(ty: Any) -> Any:
    """(name, plan) per field for a record of u32s and such records; None for any other type."""
    if isinstance(ty, _types.U32):
        return _LEAF
    if not isinstance(ty, _types.RecordType):
        return None
    fields = []
    for name, field_type in ty.fields:
        plan = _integer_record_plan(field_type)
        if plan is None:
            return None
        fields.append((name, plan))
    return tuple(fields)


class _Compiled:
    """A record plan read with one struct unpack of its entries: per field, its value's kind
    and its u32, or its kind, field count and entries' address (a record within)."""

    __slots__ = ("names", "subs", "layout", "leaves")

    def __init__(self, plan: Any) -> None:
        self.names = tuple(name for name, _ in plan)
        self.subs = tuple(None if field is _LEAF else _Compiled(field) for _, field in plan)
        self.layout = struct.Struct("<" + "".join("16xB7xI20x" if sub is None else "16xB7xQQ8x" for sub in self.subs))
        self.leaves = all(sub is None for sub in self.subs)


def _lift_record(kind: int, size: int, data: int, plan: _Compiled) -> Any:
    if kind != _RECORD or size != len(plan.names):
        raise ValueError(f"expected a record of {len(plan.names)} fields, found kind {kind} of size {size}")
    values = plan.layout.unpack(ctypes.string_at(data, plan.layout.size))
    out = _types.Record()
    fields = out.__dict__
    if plan.leaves:
        if values[0::2].count(_U32) != len(plan.names):
            raise ValueError(f"expected u32s for {plan.names}")
        fields.update(zip(plan.names, values[1::2]))
        return out
    at = 0
    for name, sub in zip(plan.names, plan.subs):
        if sub is None:
            if values[at] != _U32:
                raise ValueError(f"expected a u32 for {name}, found kind {values[at]}")
            fields[name] = values[at + 1]
            at += 2
        else:
            fields[name] = _lift_record(values[at], values[at + 1], values[at + 2], sub)
            at += 3
    return out


def _lift_integer_records(c: Any, plan: Any) -> list[Any]:
    """A `list<record>` of u32s read where wasmtime put it; the C list is freed either way."""
    assert c.kind == ffi.WASMTIME_COMPONENT_LIST.value
    try:
        n = c.of.list.size
        if n == 0:
            return []
        raw = ctypes.string_at(ctypes.cast(c.of.list.data, ctypes.c_void_p).value, n * _SIZE)
        return [_lift_record(*_AGGREGATE.unpack_from(raw, i * _SIZE), plan) for i in range(n)]
    finally:
        ffi.wasmtime_component_vallist_delete(ctypes.byref(c.of.list))


def _record_plan_of(list_type: Any) -> Any:
    memo = list_type.__dict__.get("_nats_sink_plan", False)
    if memo is False:
        plan = _integer_record_plan(list_type.element) if _LAYOUT_KNOWN else None
        memo = list_type.__dict__["_nats_sink_plan"] = _Compiled(plan) if isinstance(plan, tuple) else None
    return memo


def _path_agrees(element: Any, ours_in: Any, theirs_in: Any, to_c: Callable[..., None], from_c: Callable[..., Any],
                 original_to_c: Callable[..., None], original_from_c: Callable[..., Any]) -> bool:
    """A bulk path (`to_c`, `from_c`) gives the same values as wasmtime-py's own for a list of
    `element`, each way: `ours_in` is what ours lowers, `theirs_in` what wasmtime-py lowers
    and lifts for the same list."""

    class ListOf:  # what wasmtime-py's conversions use of a list type
        def _is_bytes(self) -> bool:
            return isinstance(element, _types.U8)

    list_type = ListOf()
    list_type.element = element  # type: ignore[attr-defined]
    try:
        ours = _VAL()
        to_c(ours_in, ctypes.pointer(ours))
        if original_from_c(list_type, ours) != theirs_in:
            return False
        theirs = _VAL()
        original_to_c(list_type, None, theirs_in, ctypes.pointer(theirs))
        return from_c(theirs) == ours_in
    except Exception:
        return False


def _agrees(original_to_c: Callable[..., None], original_from_c: Callable[..., Any]) -> bool:
    """The `list<u8>` path agrees with wasmtime-py's own."""
    sample = bytes(range(256)) * 3
    return _path_agrees(_types.U8(), sample, sample, _to_c, _from_c, original_to_c, original_from_c)


def _words_agree(original_to_c: Callable[..., None], original_from_c: Callable[..., Any]) -> bool:
    """The words path agrees with wasmtime-py's own (which takes and gives ints)."""
    values = [0, 1, 0xFF, 1 << 63, (1 << 64) - 1, 0x0102030405060708] * 3
    native = struct.pack(f"={len(values)}Q", *values)
    return _path_agrees(_types.U64(), native, values, _words_to_c, _words_from_c, original_to_c, original_from_c)


def _remember_variant_cases() -> None:
    variant = _types.VariantType
    if getattr(variant, "_nats_sink_memo", False):
        return
    cases, tagged = variant._cases, variant._tagged

    def remembered_cases(self: Any) -> Any:
        memo = self.__dict__.get("_nats_sink_cases")
        if memo is None:
            memo = self.__dict__["_nats_sink_cases"] = cases(self)
        return memo

    def remembered_tagged(self: Any) -> bool:
        memo = self.__dict__.get("_nats_sink_tagged")
        if memo is None:
            memo = self.__dict__["_nats_sink_tagged"] = tagged(self)
        return memo

    variant._cases = remembered_cases  # type: ignore[method-assign]
    variant._tagged = remembered_tagged  # type: ignore[method-assign]
    variant._nats_sink_memo = True  # type: ignore[attr-defined]


def _remember_record_fields() -> None:
    record = _types.RecordType
    if getattr(record, "_nats_sink_memo", False):
        return
    fields = record.fields.fget

    def remembered_fields(self: Any) -> Any:
        memo = self.__dict__.get("_nats_sink_fields")
        if memo is None:
            memo = self.__dict__["_nats_sink_fields"] = fields(self)
        return memo

    record.fields = property(remembered_fields)  # type: ignore[method-assign,assignment]

    def convert_from_c(self: Any, c: Any) -> Any:
        # As wasmtime-py's own, less decoding every field's name from C only to assert it: the
        # fields come in the type's order, so their count is what is checked.
        assert c.kind == ffi.WASMTIME_COMPONENT_RECORD.value
        try:
            out = _types.Record()
            fields = self.fields
            raw = c.of.record
            if raw.size != len(fields):
                raise ValueError(f"a record of {raw.size} fields for a type of {len(fields)}")
            data = raw.data
            packed = _WORDS_IN_BULK and _is_packed_bytes(fields)
            for i, (name, ty) in enumerate(fields):
                val = data[i].val
                setattr(out, name, _words_from_c(val) if packed and i == 0 else ty.convert_from_c(val))
                val.kind = ffi.WASMTIME_COMPONENT_BOOL  # taken: the delete below must not free it
                val.of.boolean = False
            return out
        finally:
            ffi.wasmtime_component_valrecord_delete(c.of.record)

    record.convert_from_c = convert_from_c  # type: ignore[method-assign]
    record._nats_sink_memo = True  # type: ignore[attr-defined]


# Whether `packed-bytes` words cross in bulk (checked at install); `packed` asks.
_WORDS_IN_BULK = False


def words_in_bulk() -> bool:
    """Whether `packed-bytes` words lower from a buffer and lift as bytes (else as ints)."""
    return _WORDS_IN_BULK


def install() -> bool:
    """Install them all; false when the `list<u8>` path was unsafe and left out."""
    global _WORDS_IN_BULK
    _remember_variant_cases()
    _remember_record_fields()
    list_type = _types.ListType
    if getattr(list_type, "_nats_sink_bulk", False):
        return True
    original_to_c, original_from_c = list_type.convert_to_c, list_type.convert_from_c
    if _SIZE < _VALUE + 1 or not _agrees(original_to_c, original_from_c):
        return False
    _WORDS_IN_BULK = _LAYOUT_KNOWN and _words_agree(original_to_c, original_from_c)

    def convert_to_c(self: Any, store: Any, val: Any, ptr: Any) -> None:
        if self._is_bytes():
            _to_c(val, ptr)
        elif _WORDS_IN_BULK and not isinstance(val, list) and isinstance(self.element, _types.U64):
            _words_to_c(val, ptr)
        else:
            original_to_c(self, store, val, ptr)

    def convert_from_c(self: Any, c: Any) -> Any:
        if self._is_bytes():
            return _from_c(c)
        plan = _record_plan_of(self)
        return original_from_c(self, c) if plan is None else _lift_integer_records(c, plan)

    list_type.convert_to_c = convert_to_c  # type: ignore[method-assign]
    list_type.convert_from_c = convert_from_c  # type: ignore[method-assign]
    list_type._nats_sink_bulk = True  # type: ignore[attr-defined]
    return True
