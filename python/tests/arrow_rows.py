"""Rows of Python values (or their JSON Lines forms) as a pyarrow table of the sink's columns.

Each value is read by the host's own converter (values.row_nodes: the values `write` sends),
then laid out in the Arrow form the guest takes for its type: numeric and jsonb as text with
RisingWave's extension names, interval as MonthDayNano, uuid as `arrow.uuid`. The bench and the
dataset test use it to give `write_arrow` the very rows they give `write`.
"""

from __future__ import annotations

from typing import Any, Sequence

import pyarrow as pa

from nats_sink.schema import DataType, ListType, StructType, parse_type
from nats_sink.values import Node, row_nodes

_FIXED = {
    "boolean": pa.bool_(), "smallint": pa.int16(), "integer": pa.int32(), "bigint": pa.int64(),
    "serial": pa.int64(), "real": pa.float32(), "double": pa.float64(), "varchar": pa.string(),
    "date": pa.date32(), "time": pa.time64("us"), "timestamp": pa.timestamp("us"),
    "timestamptz": pa.timestamp("us", tz="UTC"), "interval": pa.month_day_nano_interval(),
    "bytea": pa.binary(), "uuid": pa.uuid(), "numeric": pa.string(), "jsonb": pa.string(),
}  # fmt: skip
_EXTENSION = {"numeric": b"arrowudf.decimal", "jsonb": b"arrowudf.json"}


def arrow_field(name: str, ty: DataType) -> pa.Field:
    if isinstance(ty, ListType):
        return pa.field(name, pa.list_(arrow_field("item", ty.element)))
    if isinstance(ty, StructType):
        return pa.field(name, pa.struct([arrow_field(n, t) for n, t in ty.fields]))
    metadata = {b"ARROW:extension:name": _EXTENSION[ty]} if ty in _EXTENSION else None
    return pa.field(name, _FIXED[ty], metadata=metadata)


def _python(ty: DataType, node: Node) -> Any:
    """A converted value in the Python form pyarrow builds the column's Arrow type from."""
    tag, payload = node
    if tag == "null":
        return None
    if tag == "list":
        assert isinstance(ty, ListType)
        return [_python(ty.element, n) for n in payload]
    if tag == "struct":
        assert isinstance(ty, StructType)
        return {name: _python(t, n) for (name, t), n in zip(ty.fields, payload)}
    if tag in ("text", "decimal", "jsonb"):
        return payload.decode("utf-8", "surrogatepass")
    if tag == "interval":
        months, days, micros = payload
        return pa.MonthDayNano([months, days, micros * 1000])
    if tag == "uuid":
        high, low = payload
        return ((high << 64) | low).to_bytes(16, "big")
    return payload  # booleans, numbers, bytes, and days or microseconds as the WIT counts them


def _column(ty: DataType, field: pa.Field, nodes: list[Node]) -> pa.Array:
    """Raw counts (days, microseconds) go in through their storage type, as the WIT holds them."""
    values = [_python(ty, n) for n in nodes]
    arrow_type = field.type
    if isinstance(arrow_type, pa.ExtensionType):
        return pa.ExtensionArray.from_storage(arrow_type, pa.array(values, arrow_type.storage_type))
    if pa.types.is_date32(arrow_type):
        return pa.array(values, pa.int32()).cast(arrow_type)
    if pa.types.is_time64(arrow_type) or pa.types.is_timestamp(arrow_type):
        return pa.array(values, pa.int64()).cast(arrow_type)
    return pa.array(_nested_counts(ty, values), arrow_type)


def _nested_counts(ty: DataType, values: list[Any]) -> list[Any]:
    """Days and microseconds inside lists and structs as the dates and times pyarrow expects."""
    import datetime as dt

    def fix(t: DataType, v: Any) -> Any:
        if v is None:
            return None
        if isinstance(t, ListType):
            return [fix(t.element, x) for x in v]
        if isinstance(t, StructType):
            return {n: fix(ft, v[n]) for n, ft in t.fields}
        if t == "date":
            return dt.date(1970, 1, 1) + dt.timedelta(days=v)
        if t in ("timestamp", "timestamptz"):
            base = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc if t == "timestamptz" else None)
            return base + dt.timedelta(microseconds=v)
        if t == "time":
            return (dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=v)).time()
        return v

    return [fix(ty, v) for v in values]


def table_of(schema: Sequence[tuple[str, str]], rows: Sequence[Any]) -> pa.Table:
    """`rows` (as `write` takes them) as one table of the sink's columns."""
    columns = [(name, parse_type(text)) for name, text in schema]
    converted = [row_nodes(columns, row) for row in rows]
    fields = [arrow_field(name, ty) for name, ty in columns]
    arrays = [_column(ty, field, [r[i] for r in converted]) for i, ((_, ty), field) in enumerate(zip(columns, fields))]
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))
