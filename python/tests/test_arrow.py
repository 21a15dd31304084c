"""`write_arrow` from pyarrow, polars and DuckDB, against `write` with Python values of the same
rows, through a real nats-server: the same bytes, the same refusals, in bounded crossings."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sys
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any, Awaitable, Callable

import duckdb
import nats
import polars as pl
import pyarrow as pa
import pytest

import nats_sink
from arrow_rows import table_of
from conftest import REPO, Server, run_cli, start_server, stop_server
from nats_sink import arrow_crossings
from nats_sink.component import Instance
from nats_sink.transport import NatsTransport

SCHEMA = [
    ("b", "boolean"), ("s", "smallint"), ("i", "integer"), ("big", "bigint"), ("r", "real"),
    ("d", "double precision"), ("n", "numeric"), ("nt", "numeric"), ("v", "varchar"), ("day", "date"),
    ("t", "time"), ("ts", "timestamp"), ("tz", "timestamptz"), ("iv", "interval"), ("by", "bytea"),
    ("j", "jsonb"), ("se", "serial"), ("u", "uuid"), ("l", "integer[]"),
    ("st", "struct<a varchar, b struct<c date>>"),
]  # fmt: skip
TEN = dt.timezone(dt.timedelta(hours=10))
U = uuid.UUID("a7ffb088-83f1-1b2d-9bbc-0685bcc3323c")
ROWS: list[dict[str, Any]] = [
    {"b": True, "s": -32768, "i": 2147483647, "big": -(2**63), "r": 1.5, "d": 0.1 + 0.2, "n": Decimal("-12.340"),
     "nt": "12345678901234567890.12345678", "v": 'héllo "q"\n\x01', "day": dt.date(1, 1, 1),
     "t": dt.time(23, 59, 59, 999999), "ts": dt.datetime(2002, 6, 20, 19, 8, 3, 79318),
     "tz": dt.datetime(2002, 6, 20, 19, 8, 3, 79318, tzinfo=TEN),
     "iv": dt.timedelta(days=25, hours=8, minutes=37, seconds=43, microseconds=5), "by": b"\x00\xff\r",
     "j": {"k": [1, 2.5, None, True, "x"], "a": {"z": -0.0}}, "se": 2**63 - 1, "u": U, "l": [1, None, -3],
     "st": {"a": "x", "b": {"c": dt.date(2024, 2, 29)}}},
    {name: None for name, _ in SCHEMA},
    {"b": False, "s": 0, "i": -1, "big": 42, "r": float("nan"), "d": float("-inf"), "n": Decimal("0.000"),
     "nt": "NaN", "v": "", "day": dt.date(2024, 2, 29), "t": dt.time(0), "ts": dt.datetime(1970, 1, 1),
     "tz": dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc), "iv": dt.timedelta(days=-3), "by": b"",
     "j": [], "se": 0, "u": uuid.UUID(int=0), "l": [], "st": {"a": None, "b": None}},
]  # fmt: skip


def column(name: str) -> list[Any]:
    return [row[name] for row in ROWS]


def _interval(td: Any) -> Any:
    return None if td is None else pa.MonthDayNano([0, td.days, (td.seconds * 10**6 + td.microseconds) * 1000])


def _extension(name: str, ty: pa.DataType) -> dict[bytes, bytes]:
    return {b"ARROW:extension:name": name.encode()}


def pyarrow_table() -> pa.Table:
    """ROWS as pyarrow builds them from Python values, one Arrow form per sink type."""
    fields = [
        pa.field("b", pa.bool_()), pa.field("s", pa.int16()), pa.field("i", pa.int32()), pa.field("big", pa.int64()),
        pa.field("r", pa.float32()), pa.field("d", pa.float64()), pa.field("n", pa.decimal128(38, 3)),
        pa.field("nt", pa.string(), metadata=_extension("arrowudf.decimal", pa.string())),
        pa.field("v", pa.string()), pa.field("day", pa.date32()), pa.field("t", pa.time64("us")),
        pa.field("ts", pa.timestamp("ns")), pa.field("tz", pa.timestamp("us", tz="+10:00")),
        pa.field("iv", pa.month_day_nano_interval()), pa.field("by", pa.binary()),
        pa.field("j", pa.string(), metadata=_extension("arrowudf.json", pa.string())), pa.field("se", pa.int64()),
        pa.field("u", pa.uuid()), pa.field("l", pa.list_(pa.int32())),
        pa.field("st", pa.struct([("a", pa.string()), ("b", pa.struct([("c", pa.date32())]))])),
    ]  # fmt: skip
    values = {name: column(name) for name, _ in SCHEMA}
    values["iv"] = [_interval(v) for v in values["iv"]]
    values["j"] = [None if v is None else json.dumps(v) for v in values["j"]]
    values["u"] = [None if v is None else v.bytes for v in values["u"]]
    arrays = []
    for f in fields:
        if isinstance(f.type, pa.ExtensionType):
            arrays.append(pa.ExtensionArray.from_storage(f.type, pa.array(values[f.name], f.type.storage_type)))
        else:
            arrays.append(pa.array(values[f.name], f.type))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


async def payloads(server: Server, schema: list[tuple[str, str]], count: int,
                   send: Callable[[nats_sink.Sink], Awaitable[None]], subject: str = "a.out") -> list[bytes]:
    """What a subscriber receives of `count` messages that `send` writes (then flushes)."""
    nc = await nats.connect(f"nats://{server.address}")
    sub = await nc.subscribe(subject)
    await nc.flush()
    sink = await nats_sink.open(server.options(subject), schema)
    try:
        await send(sink)
        await sink.flush()
    finally:
        await sink.close()
    out = [(await sub.next_msg(timeout=10)).data for _ in range(count)]
    await nc.close()
    return out


async def by_write(server: Server, schema: list[tuple[str, str]], rows: list[Any]) -> list[bytes]:
    return await payloads(server, schema, len(rows), lambda s: s.write(rows), "a.rows")


async def by_arrow(server: Server, schema: list[tuple[str, str]], data: Any, count: int) -> list[bytes]:
    return await payloads(server, schema, count, lambda s: s.write_arrow(data), "a.arrow")


async def test_pyarrow_every_type_is_byte_identical_to_write(server: Server) -> None:
    expected = await by_write(server, SCHEMA, ROWS)
    table = pyarrow_table()
    assert await by_arrow(server, SCHEMA, table, len(ROWS)) == expected
    # A RecordBatch, a RecordBatchReader and a PyCapsule stream are the same rows.
    assert await by_arrow(server, SCHEMA, table.to_batches()[0], len(ROWS)) == expected
    reader = pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=1))
    assert await by_arrow(server, SCHEMA, reader, len(ROWS)) == expected

    class Capsule:  # a foreign library's table: only the PyCapsule interface
        def __arrow_c_stream__(self, requested_schema: Any = None) -> Any:
            return table.__arrow_c_stream__(requested_schema)

    assert await by_arrow(server, SCHEMA, Capsule(), len(ROWS)) == expected


OTHER_FORMS = [("big", "bigint"), ("s", "smallint"), ("r", "real"), ("n", "numeric"), ("v", "varchar"),
               ("by", "bytea"), ("day", "date"), ("t", "time"), ("ts", "timestamp"), ("u", "uuid"),
               ("l", "varchar[]"), ("c", "varchar")]  # fmt: skip


async def test_pyarrow_other_forms_of_each_type_are_the_same_rows(server: Server) -> None:
    """Unsigned and narrow integers, views, large and dictionary forms, other units."""
    rows = [
        {"big": 2**63 - 1, "s": 7, "r": 0.5, "n": 42, "v": "a\"b", "by": b"\x01", "day": dt.date(2024, 2, 29),
         "t": dt.time(1, 2, 3, 4000), "ts": dt.datetime(2001, 2, 3, 4, 5, 6), "u": U, "l": ["x", None], "c": "red"},
        {"big": 0, "s": -1, "r": None, "n": None, "v": None, "by": None, "day": None, "t": None, "ts": None,
         "u": None, "l": None, "c": None},
    ]  # fmt: skip
    table = pa.table({
        "big": pa.array([2**63 - 1, 0], pa.uint64()), "s": pa.array([7, -1], pa.int64()),
        "r": pa.array([0.5, None], pa.float64()), "n": pa.array([42, None], pa.int8()),
        "v": pa.array(['a"b', None], pa.string_view()), "by": pa.array([b"\x01", None], pa.large_binary()),
        "day": pa.array([dt.date(2024, 2, 29), None], pa.date64()), "t": pa.array([dt.time(1, 2, 3, 4000), None], pa.time32("ms")),
        "ts": pa.array([dt.datetime(2001, 2, 3, 4, 5, 6), None], pa.timestamp("s")),
        "u": pa.array([U.bytes, None], pa.binary(16)), "l": pa.array([["x", None], None], pa.large_list(pa.large_string())),
        "c": pa.array(["red", None]).dictionary_encode(),
    })  # fmt: skip
    assert await by_arrow(server, OTHER_FORMS, table, 2) == await by_write(server, OTHER_FORMS, rows)


POLARS_SCHEMA = [(n, t) for n, t in SCHEMA if n not in ("iv", "u")]  # polars has no interval or uuid type


async def test_polars_dataframe_is_byte_identical_to_write(server: Server) -> None:
    """Polars' own forms: Utf8View and BinaryView, large lists, int64 by default, ns times."""
    rows = [{n: r[n] for n, _ in POLARS_SCHEMA} for r in ROWS]
    frame = pl.DataFrame({
        "b": column("b"), "s": column("s"), "i": column("i"), "big": column("big"),  # int64: checked per value
        "r": pl.Series(column("r"), dtype=pl.Float32), "d": column("d"),
        "n": pl.Series(column("n"), dtype=pl.Decimal(38, 3)), "nt": column("nt"), "v": column("v"),
        "day": column("day"), "t": column("t"), "ts": pl.Series(column("ts"), dtype=pl.Datetime("ns")),
        "tz": pl.Series([None if v is None else v.astimezone(dt.timezone.utc).replace(tzinfo=None) for v in column("tz")],
                        dtype=pl.Datetime("us")).dt.replace_time_zone("UTC"),
        "by": column("by"), "j": [None if v is None else json.dumps(v) for v in column("j")], "se": column("se"),
        "l": pl.Series(column("l"), dtype=pl.List(pl.Int64)),
        "st": pl.Series(column("st"), dtype=pl.Struct({"a": pl.String, "b": pl.Struct({"c": pl.Date})})),
    }, strict=False)  # fmt: skip
    exported = pa.RecordBatchReader.from_stream(frame).schema
    assert exported.field("v").type == pa.string_view() and exported.field("big").type == pa.int64()
    assert await by_arrow(server, POLARS_SCHEMA, frame, len(rows)) == await by_write(server, POLARS_SCHEMA, rows)


DUCKDB_QUERY = """
SELECT * FROM (VALUES
 (true, (-32768)::SMALLINT, 2147483647::INTEGER, (-9223372036854775808)::BIGINT, 1.5::REAL, 0.1::DOUBLE + 0.2::DOUBLE,
  '-12.340'::DECIMAL(18,3), '12345678901234567890.12345678', 'héllo "q"' || chr(10) || chr(1), DATE '0001-01-01',
  TIME '23:59:59.999999', TIMESTAMP '2002-06-20 19:08:03.079318', TIMESTAMPTZ '2002-06-20 19:08:03.079318+10:00',
  INTERVAL '25 days 08:37:43.000005', '\\x00\\xFF\\x0D'::BLOB, '{"k":[1,2.5,null,true,"x"],"a":{"z":-0.0}}',
  9223372036854775807::BIGINT, 'a7ffb088-83f1-1b2d-9bbc-0685bcc3323c'::UUID, [1, NULL, -3]::INTEGER[],
  {'a': 'x', 'b': {'c': DATE '2024-02-29'}}),
 (NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (false, 0, -1, 42, 'nan'::REAL, '-inf'::DOUBLE, '0.000'::DECIMAL(18,3), 'NaN', '', DATE '2024-02-29', TIME '00:00:00',
  TIMESTAMP '1970-01-01 00:00:00', TIMESTAMPTZ '2024-01-01 00:00:00+00', INTERVAL '-3 days', ''::BLOB, '[]', 0,
  '00000000-0000-0000-0000-000000000000'::UUID, []::INTEGER[], {'a': NULL, 'b': NULL})
) AS t(b, s, i, big, r, d, n, nt, v, "day", t, ts, tz, iv, "by", j, se, u, l, st)
"""


async def test_duckdb_result_is_byte_identical_to_write(server: Server) -> None:
    """DuckDB's lossless export (uuid as `arrow.uuid`, booleans as `arrow.bool8`), as a result."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET arrow_lossless_conversion = true")
    result = con.sql(DUCKDB_QUERY)
    assert await by_arrow(server, SCHEMA, result, len(ROWS)) == await by_write(server, SCHEMA, ROWS)
    con.close()


async def test_the_example_dataset_as_pyarrow_matches_the_cli(server: Server) -> None:
    """The 3,000 rows of every type: write_arrow's payloads are the CLI's, byte for byte."""
    schema_path, rows_path = REPO / "examples" / "all_types.schema.json", REPO / "examples" / "all_types.jsonl"
    schema = [(c["name"], c["type"]) for c in json.loads(schema_path.read_text())["columns"]]
    rows = [json.loads(line) for line in rows_path.read_text().splitlines()]
    table = table_of(schema, rows)
    nc = await nats.connect(f"nats://{server.address}")
    sub = await nc.subscribe("all.cli")
    await nc.flush()
    done = await asyncio.to_thread(run_cli, schema_path, rows_path, server.options("all.cli"))
    assert done.returncode == 0, done.stderr
    via_cli = [(await sub.next_msg(timeout=10)).data for _ in rows]
    await nc.close()
    assert await by_arrow(server, schema, table, len(rows)) == via_cli


async def test_out_of_range_value_is_invalid_row_after_the_rows_before_it_are_confirmed(server: Server) -> None:
    """An int64 past an integer column, in a later crossing: its index in the whole table, the
    column named, every row before it in the stream once flushed, and the sink still open."""
    nc = await nats.connect(f"nats://{server.address}")
    js = nc.jetstream()
    await js.add_stream(name="RANGE", subjects=["range.>"])
    bad = 20_000
    values = list(range(30_000))
    values[bad] = 2**31
    table = pa.table({"id": pa.array(values, pa.int64()), "name": pa.array([f"row {v}" for v in values])})
    sink = await nats_sink.open(server.options("range.x"), [("id", "integer"), ("name", "varchar")])
    calls = spy_crossings(sink)
    with pytest.raises(nats_sink.InvalidRow) as refused:
        await sink.write_arrow(table)
    assert (refused.value.row, refused.value.column) == (bad, "id")
    assert "2147483648" in refused.value.message
    assert len(calls) > 1, "the bad row lies past the first crossing"
    await sink.flush()
    assert (await js.stream_info("RANGE")).state.messages == bad
    last = await js.get_last_msg("RANGE", "range.x")
    assert json.loads(last.data) == {"id": bad - 1, "name": f"row {bad - 1}"}
    await sink.write_arrow(table.slice(0, 1))  # the refusal left the sink open
    await sink.flush()
    await sink.close()
    await nc.close()


def spy_crossings(sink: nats_sink.Sink) -> list[int]:
    """The IPC bytes of every write-arrow call the sink makes."""
    sizes: list[int] = []
    instance: Instance = sink._instance
    call = instance.call

    def counting(name: str, *args: Any) -> Any:
        if name == "[method]sink.write-arrow":
            sizes.append(args[1].len)  # the stream's bytes, packed into words
        return call(name, *args)

    instance.call = counting  # type: ignore[method-assign]
    return sizes


async def test_a_big_table_crosses_in_bounded_parts(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """Some 12 MB in and more out: each crossing's IPC within the bound, and each batch the
    guest publishes back within the out bound, every row delivered."""
    published: list[int] = []
    publish = NatsTransport.publish

    def measured(self: NatsTransport, batch: Any) -> Any:
        published.append(batch.data.len)
        return publish(self, batch)

    monkeypatch.setattr(NatsTransport, "publish", measured)
    count = 6000
    text = ('"\\' * 1000)  # 2,000 bytes that escape to 4,000
    table = pa.table({"id": pa.array(range(count), pa.int64()), "v": pa.array([text] * count, pa.string_view())})
    nc = await nats.connect(f"nats://{server.address}")
    sub = await nc.subscribe("big.x")
    await nc.flush()
    sink = await nats_sink.open(server.options("big.x"), [("id", "bigint"), ("v", "varchar")])
    sizes = spy_crossings(sink)
    await sink.write_arrow(table)
    await sink.flush()
    await sink.close()
    received = [json.loads((await sub.next_msg(timeout=10)).data) for _ in range(count)]
    await nc.close()
    assert [r["id"] for r in received] == list(range(count)) and received[-1]["v"] == text
    assert len(sizes) >= 12_000_000 // arrow_crossings.CROSSING_IN_BYTES
    assert max(sizes) <= arrow_crossings.CROSSING_IN_BYTES, max(sizes)
    assert max(published) <= arrow_crossings.CROSSING_OUT_BYTES, max(published)
    assert sum(published) > count * 4000  # the escapes came back doubled, in parts


async def test_a_row_too_large_for_one_call_is_refused_after_the_rows_before_it(server: Server) -> None:
    big = "x" * (arrow_crossings.ROW_MAX_BYTES + 1)
    table = pa.table({"v": pa.array(["a", "b", big, "c"], pa.large_string())})
    nc = await nats.connect(f"nats://{server.address}")
    sub = await nc.subscribe("huge.x")
    await nc.flush()
    sink = await nats_sink.open(server.options("huge.x"), [("v", "varchar")])
    with pytest.raises(nats_sink.InvalidRow) as refused:
        await sink.write_arrow(table)
    assert refused.value.row == 2
    await sink.flush()
    assert [json.loads((await sub.next_msg(timeout=5)).data)["v"] for _ in range(2)] == ["a", "b"]
    await sink.close()
    await nc.close()


async def test_a_long_text_that_fits_crosses_though_its_worst_case_escapes_would_not(server: Server) -> None:
    """Bounded at six bytes a byte, a 1 MB text could take 6 MB out, past what one call carries:
    its escapes are then counted (none), and it crosses."""
    long = "x" * 1_000_000
    assert 6 * len(long) > arrow_crossings.ROW_MAX_BYTES
    nc = await nats.connect(f"nats://{server.address}")
    sub = await nc.subscribe("long.x")
    await nc.flush()
    sink = await nats_sink.open(server.options("long.x"), [("v", "varchar")])
    await sink.write_arrow(pa.table({"v": pa.array(["a", long, "b"], pa.large_string())}))
    await sink.flush()
    await sink.close()
    got = [json.loads((await sub.next_msg(timeout=5)).data)["v"] for _ in range(3)]
    assert got == ["a", long, "b"]
    await nc.close()


async def test_a_row_too_large_for_one_call_is_refused_beside_small_rows_too(tmp_path: Path) -> None:
    """Its bound does not depend on its neighbours: with small rows around it, as alone (a
    server whose max_payload would take it, so that only the host's bound can refuse it)."""
    escaped = "\x01" * 340_000  # each byte `\u0001`: 2,040,000 bytes of JSON
    assert 6 * len(escaped) > arrow_crossings.ROW_MAX_BYTES
    server = start_server(tmp_path, "max_payload: 8388608\n")
    try:
        nc = await nats.connect(f"nats://{server.address}")
        sub = await nc.subscribe("beside.x")
        await nc.flush()
        sink = await nats_sink.open(server.options("beside.x"), [("v", "varchar")])
        with pytest.raises(nats_sink.InvalidRow) as refused:
            await sink.write_arrow(pa.table({"v": ["a", escaped, "b"]}))
        assert refused.value.row == 1
        await sink.flush()
        assert json.loads((await sub.next_msg(timeout=5)).data) == {"v": "a"}
        await sink.close()
        await nc.close()
    finally:
        stop_server(server)


@pytest.mark.parametrize("column", ["sparse_union", "dense_union", "tensor"])
async def test_a_column_pyarrow_cannot_empty_is_invalid_schema_and_the_sink_stays_open(server: Server, column: str) -> None:
    values = {
        "sparse_union": lambda: pa.UnionArray.from_sparse(pa.array([0, 0], pa.int8()), [pa.array(["a", "b"])]),
        "dense_union": lambda: pa.UnionArray.from_dense(pa.array([0, 0], pa.int8()), pa.array([0, 1], pa.int32()), [pa.array(["a", "b"])]),
        "tensor": lambda: pa.ExtensionArray.from_storage(
            pa.fixed_shape_tensor(pa.int32(), [2]), pa.array([[0, 0], [0, 0]], pa.list_(pa.int32(), 2))),
    }[column]()
    sink = await nats_sink.open(server.options("odd.x"), [("id", "bigint"), ("u", "varchar")])
    with pytest.raises(nats_sink.InvalidSchema, match="column `u`"):
        await sink.write_arrow(pa.table({"id": [1, 2], "u": values}))
    await sink.write([{"id": 1, "u": "still open"}])
    await sink.flush()
    await sink.close()


async def test_a_wrong_typed_column_is_invalid_schema_and_nothing_is_published(server: Server) -> None:
    nc = await nats.connect(f"nats://{server.address}")
    sub = await nc.subscribe("schema.x")
    await nc.flush()
    sink = await nats_sink.open(server.options("schema.x"), [("id", "bigint"), ("name", "varchar")])
    with pytest.raises(nats_sink.InvalidSchema, match="name"):
        await sink.write_arrow(pa.table({"id": [1], "name": [2]}))
    with pytest.raises(nats_sink.InvalidSchema, match="name"):  # a missing column too, even with no rows
        await sink.write_arrow(pa.table({"id": pa.array([], pa.int64())}))
    await sink.write([{"id": 1, "name": "after"}])  # the sink is still open
    await sink.flush()
    assert json.loads((await sub.next_msg(timeout=5)).data) == {"id": 1, "name": "after"}
    with pytest.raises(nats.errors.TimeoutError):
        await sub.next_msg(timeout=0.2)  # the refused tables published nothing
    await sink.close()
    await nc.close()


async def test_a_non_arrow_object_is_a_type_error_and_the_sink_stays_open(server: Server) -> None:
    sink = await nats_sink.open(server.options("none.x"), [("id", "bigint")])
    for value in ([{"id": 1}], {"id": [1]}, "id", None):
        with pytest.raises(nats_sink.NotArrow, match="write_arrow takes a pyarrow Table") as refused:
            await sink.write_arrow(value)
        assert isinstance(refused.value, TypeError) and isinstance(refused.value, nats_sink.SinkError)
    await sink.write_arrow(pa.table({"id": [1]}))
    await sink.flush()
    await sink.close()


async def test_a_stream_that_fails_part_way_keeps_the_rows_before_it(server: Server) -> None:
    schema = pa.schema([("id", pa.int64())])

    def batches() -> Any:
        yield pa.record_batch([pa.array([1, 2, 3])], schema=schema)
        raise OSError("the source went away")

    nc = await nats.connect(f"nats://{server.address}")
    sub = await nc.subscribe("fail.x")
    await nc.flush()
    sink = await nats_sink.open(server.options("fail.x"), [("id", "bigint")])
    with pytest.raises(nats_sink.InvalidRow, match="the source went away") as refused:
        await sink.write_arrow(pa.RecordBatchReader.from_batches(schema, batches()))
    assert refused.value.row == 3
    await sink.flush()
    assert [json.loads((await sub.next_msg(timeout=5)).data)["id"] for _ in range(3)] == [1, 2, 3]
    await sink.close()
    await nc.close()


async def test_without_pyarrow_write_arrow_says_how_to_install_it(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # `import pyarrow` now fails
    sink = await nats_sink.open(server.options("none.x"), [("id", "bigint")])
    with pytest.raises(nats_sink.ArrowUnavailable, match=r"pip install nats-sink\[arrow\]") as refused:
        await sink.write_arrow(object())
    assert isinstance(refused.value, ImportError)
    await sink.close()


async def test_a_write_arrow_stopped_part_way_closes_the_sink(server: Server) -> None:
    """Cancelled between two crossings: what it had not handed on is lost, so later calls are Closed."""
    sink = await nats_sink.open(server.options("stop.x"), [("id", "bigint"), ("v", "varchar")])
    instance: Instance = sink._instance
    call = instance.call
    crossed: list[int] = []

    def cancelling(name: str, *args: Any) -> Any:
        if name == "[method]sink.write-arrow":
            crossed.append(1)
            if len(crossed) == 2:
                raise asyncio.CancelledError
        return call(name, *args)

    instance.call = cancelling  # type: ignore[method-assign]
    table = pa.table({"id": pa.array(range(5000), pa.int64()), "v": ["x" * 200] * 5000})
    with pytest.raises(asyncio.CancelledError):
        await sink.write_arrow(table)
    with pytest.raises(nats_sink.Closed, match="write_arrow was stopped part way"):
        await sink.flush()
    await sink.close()


async def test_many_small_batches_count_their_framing_in_the_bound(server: Server) -> None:
    """A stream of one-row batches of 21 columns: each batch's metadata and padding (about 1 KB
    beside its row) counts toward the crossing's bytes, and the rows are the table's."""
    schema_path, rows_path = REPO / "examples" / "all_types.schema.json", REPO / "examples" / "all_types.jsonl"
    schema = [(c["name"], c["type"]) for c in json.loads(schema_path.read_text())["columns"]]
    rows = [json.loads(line) for line in rows_path.read_text().splitlines()[:1500]]
    table = table_of(schema, rows)
    reader = pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=1))
    sizes: list[int] = []

    async def send(sink: nats_sink.Sink) -> None:
        sizes.extend([])  # filled by the spy below
        spied = spy_crossings(sink)
        await sink.write_arrow(reader)
        sizes.extend(spied)

    one_by_one = await payloads(server, schema, len(rows), send, "a.small")
    assert max(sizes) <= arrow_crossings.CROSSING_IN_BYTES, max(sizes)
    assert one_by_one == await by_arrow(server, schema, table, len(rows))


async def test_list_views_are_refused_and_categoricals_read_as_their_values(server: Server) -> None:
    """From the outside check: pyarrow's cast of a list view lost values (`[[1,2]]` went out as
    `{"l":[]}`), and polars' Categorical (dictionary of Utf8View) failed with a raw Arrow error."""
    nc = await nats.connect(f"nats://{server.address}")
    sub = await nc.subscribe("views.x")
    await nc.flush()
    sink = await nats_sink.open(server.options("views.x"), [("l", "integer[]")])
    for ty in (pa.list_view(pa.int32()), pa.large_list_view(pa.int32())):
        with pytest.raises(nats_sink.InvalidSchema, match="column `l`: a list view is not taken"):
            await sink.write_arrow(pa.table({"l": pa.array([[1, 2], [3]], ty)}))
    await sink.close()
    sink = await nats_sink.open(server.options("views.x"), [("s", "varchar")])
    categorical = pl.DataFrame({"s": pl.Series(["a", "b", "a"], dtype=pl.Categorical)})
    await sink.write_arrow(categorical)
    view_dict = pa.DictionaryArray.from_arrays(pa.array([1, 0], pa.int32()), pa.array(["x", "y"], pa.string_view()))
    await sink.write_arrow(pa.table({"s": view_dict}))
    await sink.flush()
    got = [json.loads((await sub.next_msg(timeout=5)).data) for _ in range(5)]
    assert got == [{"s": "a"}, {"s": "b"}, {"s": "a"}, {"s": "y"}, {"s": "x"}]
    with pytest.raises(nats.errors.TimeoutError):
        await sub.next_msg(timeout=0.2)  # the refused list views published nothing
    await sink.close()
    await nc.close()
