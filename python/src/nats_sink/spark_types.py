"""Spark's column types as the sink's, and the one Arrow form Spark exports that the guest does
not read (DayTimeInterval as `duration[us]`), turned into the interval the guest takes.

The table (docs/spark.md shows it):

    BooleanType                 boolean
    ByteType, ShortType         smallint
    IntegerType                 integer
    LongType                    bigint
    FloatType                   real
    DoubleType                  double precision
    DecimalType(p, s)           numeric
    StringType (char, varchar)  varchar
    BinaryType                  bytea
    DateType                    date
    TimeType                    time
    TimestampType               timestamptz
    TimestampNTZType            timestamp
    DayTimeIntervalType         interval (days and a time of day, as Spark shows it)
    ArrayType(T)                T[]
    StructType                  struct<...>

Anything else (MapType, YearMonthIntervalType, CalendarIntervalType, VariantType, NullType,
user-defined and spatial types) is refused, naming the column, before any task starts.
"""

from __future__ import annotations

from typing import Any

from . import errors

_ATOMIC = {
    "BooleanType": "boolean", "ByteType": "smallint", "ShortType": "smallint", "IntegerType": "integer",
    "LongType": "bigint", "FloatType": "real", "DoubleType": "double precision", "DecimalType": "numeric",
    "StringType": "varchar", "CharType": "varchar", "VarcharType": "varchar", "BinaryType": "bytea",
    "DateType": "date", "TimeType": "time", "TimestampType": "timestamptz", "TimestampNTZType": "timestamp",
    "DayTimeIntervalType": "interval",
}  # fmt: skip
_WHY_NOT = {
    "MapType": "the sink has no map type; turn it into an array of structs (map_entries) or JSON text (to_json)",
    "YearMonthIntervalType": "Spark's Arrow export of year-month intervals cannot be read by pyarrow; "
    "cast it to a string or to months",
    "NullType": "a column of NullType has no sink type; cast it to the type it stands for",
}


class UnsupportedType(errors.InvalidSchema):
    """A DataFrame column of a Spark type the sink has no mapping for; no task was started."""


def sink_type(spark_type: Any, column: str) -> str:
    """The sink's type text for a Spark data type (see the table above)."""
    kind = type(spark_type).__name__
    if kind in _ATOMIC:
        return _ATOMIC[kind]
    if kind == "ArrayType":
        return f"{sink_type(spark_type.elementType, column)}[]"
    if kind == "StructType":
        fields = ", ".join(f"{_quoted(f.name)} {sink_type(f.dataType, column)}" for f in spark_type.fields)
        return f"struct<{fields}>"
    why = _WHY_NOT.get(kind, "the sink has no mapping for it")
    raise UnsupportedType(f"column `{column}`: Spark type {spark_type.simpleString()} is not taken: {why}")


def _quoted(name: str) -> str:
    """A struct field name in the schema grammar: bare when it is a plain word, else quoted."""
    if name and all(c.isalnum() or c == "_" for c in name):
        return name
    return '"' + name.replace('"', '""') + '"'


def sink_schema(spark_schema: Any) -> list[tuple[str, str]]:
    """The sink's columns for a DataFrame's schema, in its order."""
    return [(f.name, sink_type(f.dataType, f.name)) for f in spark_schema.fields]


_DAY_MICROS = 86_400_000_000


def has_duration(arrow_type: Any) -> bool:
    import pyarrow as pa

    t = pa.types
    if t.is_duration(arrow_type):
        return True
    if t.is_list(arrow_type) or t.is_large_list(arrow_type):
        return has_duration(arrow_type.value_type)
    if t.is_struct(arrow_type):
        return any(has_duration(f.type) for f in arrow_type)
    return False


def with_intervals(batch: Any) -> Any:
    """`batch` with every `duration[us]` (Spark's DayTimeInterval) as a MonthDayNano interval of
    whole days and the time left over, both with the duration's sign, as Spark prints it:
    INTERVAL '-3 01:00:00' DAY TO SECOND is -3 days -01:00:00. Other columns are untouched."""
    if not any(has_duration(f.type) for f in batch.schema):
        return batch
    import pyarrow as pa

    columns = [_intervals(column) if has_duration(column.type) else column for column in batch.columns]
    return pa.RecordBatch.from_arrays(columns, names=batch.schema.names)


def _intervals(array: Any) -> Any:
    import pyarrow as pa

    t = pa.types
    ty = array.type
    if t.is_duration(ty):
        if ty.unit != "us":  # Spark exports microseconds; another unit is not Spark's
            raise errors.InvalidSchema(f"a duration[{ty.unit}] column is not Spark's DayTimeInterval")
        return pa.array([None if v is None else _month_day_nano(v) for v in array.cast(pa.int64()).to_pylist()],
                        pa.month_day_nano_interval())  # fmt: skip
    mask = array.is_null() if array.null_count else None
    if t.is_list(ty) or t.is_large_list(ty):
        values = _intervals(array.values)
        item = ty.value_field.with_type(values.type)
        kind, make = (pa.ListArray, pa.list_) if t.is_list(ty) else (pa.LargeListArray, pa.large_list)
        return kind.from_arrays(array.offsets, values, type=make(item), mask=mask)
    if t.is_struct(ty):
        children = [_intervals(array.field(i)) for i in range(ty.num_fields)]
        fields = [pa.field(f.name, c.type, f.nullable) for f, c in zip(ty, children)]
        return pa.StructArray.from_arrays(children, fields=fields, mask=mask)
    return array


def _month_day_nano(micros: int) -> Any:
    import pyarrow as pa

    days = abs(micros) // _DAY_MICROS * (1 if micros >= 0 else -1)
    return pa.MonthDayNano([0, days, (micros - days * _DAY_MICROS) * 1000])
