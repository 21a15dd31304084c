"""Arrow data for `write_arrow`: what it accepts, and the forms the guest reads.

pyarrow is optional (`pip install nats-sink[arrow]`): it is imported on the first `write_arrow`,
never with the package. Anything that speaks Arrow is read as a stream of record batches: a
pyarrow Table, RecordBatch or RecordBatchReader, or any object with `__arrow_c_stream__` (the
Arrow PyCapsule interface: polars DataFrames, DuckDB results) or `__arrow_c_array__`.

Views (Utf8View, BinaryView), dictionary-encoded columns and `arrow.bool8` booleans (DuckDB's
lossless export) are read as their plain (large) forms here, values unchanged: a slice of a view array still holds its whole data buffers, so
its IPC would not be bounded by its rows, and the guest refuses dictionaries.
"""

from __future__ import annotations

import builtins
from typing import Any, Iterator

from . import errors


class NotArrow(errors.SinkError, builtins.TypeError):
    """`write_arrow` was given something that is not Arrow data; nothing was written."""


class ArrowUnavailable(errors.SinkError, builtins.ImportError):
    """`write_arrow` needs pyarrow: `pip install nats-sink[arrow]`."""


def pyarrow() -> Any:
    """The pyarrow module, imported on first use."""
    try:
        import pyarrow as pa
        import pyarrow.compute  # noqa: F401 - the bounds use it
        import pyarrow.ipc  # noqa: F401
    except ImportError as e:
        raise ArrowUnavailable(
            f"write_arrow needs pyarrow, which could not be imported ({e}); install it with "
            "`pip install nats-sink[arrow]` (or `pip install pyarrow`)"
        ) from None
    return pa


def record_batches(data: Any) -> tuple[Any, Iterator[Any]]:
    """The schema of `data` and its record batches, read lazily where it is a stream."""
    pa = pyarrow()
    if isinstance(data, pa.Table):
        return data.schema, iter(data.to_batches())
    if isinstance(data, pa.RecordBatch):
        return data.schema, iter([data])
    if isinstance(data, pa.RecordBatchReader):
        return data.schema, iter(data)
    if hasattr(data, "__arrow_c_stream__"):
        try:
            reader = pa.RecordBatchReader.from_stream(data)
        except Exception as e:  # noqa: BLE001 - the object's own export failed
            raise NotArrow(f"reading {type(data).__name__} as an Arrow stream failed: {type(e).__name__}: {e}") from None
        return reader.schema, iter(reader)
    if hasattr(data, "__arrow_c_array__"):
        try:
            batch = pa.record_batch(data)
        except Exception as e:  # noqa: BLE001
            raise NotArrow(f"reading {type(data).__name__} as an Arrow record batch failed: {type(e).__name__}: {e}") from None
        return batch.schema, iter([batch])
    raise NotArrow(
        f"write_arrow takes a pyarrow Table, RecordBatch or RecordBatchReader, or an object with "
        f"__arrow_c_stream__ (a polars DataFrame, a DuckDB result), not {type(data).__name__}; "
        "use write for rows of Python values"
    )


def _plain_type(ty: Any) -> Any:
    """`ty` with every view and dictionary replaced by its large plain form."""
    pa = pyarrow()
    t = pa.types
    if isinstance(ty, pa.Bool8Type):  # DuckDB's lossless booleans: one byte each, 0 is false
        return pa.bool_()
    if t.is_string_view(ty):
        return pa.large_string()
    if t.is_binary_view(ty):
        return pa.large_binary()
    if t.is_dictionary(ty):
        return _plain_type(ty.value_type)
    if t.is_list_view(ty) or t.is_large_list_view(ty):
        # pyarrow's cast of a list view to a list is not exact (26.0.1 loses values), and the
        # guest does not read views: refused rather than published other than given.
        raise _NotTaken("a list view is not taken; cast it to a list first (pyarrow's own cast of list views loses values)")
    if t.is_list(ty):
        return pa.list_(ty.value_field.with_type(_plain_type(ty.value_type)))
    if t.is_large_list(ty):
        return pa.large_list(ty.value_field.with_type(_plain_type(ty.value_type)))
    if t.is_struct(ty):
        return pa.struct([f.with_type(_plain_type(f.type)) for f in ty])
    return ty


class _NotTaken(Exception):
    """A type `_plain_type` will not convert; `plain_schema` names its column."""


def plain_schema(schema: Any) -> Any:
    pa = pyarrow()
    fields = []
    for f in schema:
        try:
            fields.append(f.with_type(_plain_type(f.type)))
        except _NotTaken as why:
            raise errors.InvalidSchema(f"column `{f.name}`: {why}") from None
    return pa.schema(fields, metadata=schema.metadata)


def plain_batch(batch: Any, schema: Any) -> Any:
    """`batch` in `schema`'s plain forms (a no-op where it has none to change)."""
    if batch.schema.equals(schema):
        return batch
    pa = pyarrow()
    columns = [_plain_array(col, f) for col, f in zip(batch.columns, schema)]
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def _plain_array(array: Any, field: Any) -> Any:
    """`array` cast to `field`'s plain type, checked in full: a cast that fails or builds an
    invalid array refuses the column, never publishes something other than given."""
    ty = field.type
    if array.type.equals(ty):
        return array
    pa = pyarrow()
    try:
        if pa.types.is_dictionary(array.type) and not pa.types.is_dictionary(ty):
            # Decode through the plain form of the dictionary's values: pyarrow has no take
            # kernel for views (polars' Categorical carries Utf8View values).
            values = _plain_array(array.dictionary, pa.field(field.name, _plain_type(array.dictionary.type)))
            array = pa.DictionaryArray.from_arrays(array.indices, values).dictionary_decode()
            if array.type.equals(ty):
                return array
        plain = array.cast(ty)
        plain.validate(full=True)
    except errors.SinkError:
        raise
    except Exception as e:  # noqa: BLE001 - pyarrow raises several kinds for one cause
        raise errors.InvalidSchema(
            f"column `{field.name}`: its {array.type} values could not be read as {ty}: {type(e).__name__}"
        ) from None
    return plain
