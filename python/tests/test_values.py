"""Native Python values against their JSON Lines forms, and JSON Lines forms against the CLI."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import nats
import pytest

import nats_sink
from conftest import Server, run_cli

EVERY_TYPE = [
    ("b", "boolean"), ("s", "smallint"), ("i", "integer"), ("big", "bigint"), ("r", "real"),
    ("d", "double precision"), ("n", "numeric"), ("v", "varchar"), ("day", "date"), ("t", "time"),
    ("ts", "timestamp"), ("tz", "timestamptz"), ("iv", "interval"), ("by", "bytea"), ("j", "jsonb"),
    ("se", "serial"), ("u", "uuid"), ("l", "integer[]"), ("st", "struct<a varchar, b struct<c date>>"),
]  # fmt: skip

NATIVE = {
    "b": True, "s": -32768, "i": 2147483647, "big": -(2**63), "r": 1.1, "d": 0.1 + 0.2,
    "n": Decimal("-12.340"), "v": "héllo \"q\"\n", "day": dt.date(1, 1, 1),
    "t": dt.time(23, 59, 59, 999999), "ts": dt.datetime(2002, 6, 20, 19, 8, 3, 79318),
    "tz": dt.datetime(2002, 6, 20, 19, 8, 3, 79318, tzinfo=dt.timezone(dt.timedelta(hours=10))),
    "iv": dt.timedelta(days=25, hours=8, minutes=37, seconds=43, microseconds=5),
    "by": b"\x00\xff\r", "j": {"k": [1, 2.5, None, True, "x"], "a": {"z": -0.0}},
    "se": 2**63 - 1, "u": uuid.UUID("a7ffb088-83f1-1b2d-9bbc-0685bcc3323c"), "l": [1, None, -3],
    "st": {"a": "x", "b": {"c": dt.date(2024, 2, 29)}},
}  # fmt: skip
JSON_FORMS = {
    "b": True, "s": -32768, "i": 2147483647, "big": -(2**63), "r": 1.1, "d": 0.30000000000000004,
    "n": "-12.340", "v": "héllo \"q\"\n", "day": "0001-01-01", "t": "23:59:59.999999",
    "ts": "2002-06-20 19:08:03.079318", "tz": "2002-06-20T19:08:03.079318+10:00",
    "iv": "25 days 08:37:43.000005", "by": "\\x00ff0d", "j": {"a": {"z": -0.0}, "k": [1, 2.5, None, True, "x"]},
    "se": 2**63 - 1, "u": "a7ffb088-83f1-1b2d-9bbc-0685bcc3323c", "l": [1, None, -3],
    "st": {"a": "x", "b": {"c": "2024-02-29"}},
}  # fmt: skip


async def sink_rows(server: Server, schema: list[tuple[str, str]], rows: list[Any], **options: str) -> list[bytes]:
    """Rows through the Python host to a core subject; the payloads a subscriber received."""
    nc = await nats.connect(f"nats://{server.address}")
    sub = await nc.subscribe("v.py")
    await nc.flush()
    sink = await nats_sink.open(server.options("v.py", **options), schema)
    await sink.write(rows)
    await sink.flush()
    await sink.close()
    out = [(await sub.next_msg(timeout=5)).data for _ in rows]
    await nc.close()
    return out


async def test_native_values_equal_their_json_lines_forms(server: Server) -> None:
    native, as_json = await sink_rows(server, EVERY_TYPE, [NATIVE, JSON_FORMS])
    assert native == as_json
    assert json.loads(native)["r"] == 1.100000023841858  # real is f32, widened as RisingWave does


async def test_tuples_and_dicts_are_the_same_row(server: Server) -> None:
    by_name, positional = await sink_rows(server, EVERY_TYPE, [NATIVE, tuple(NATIVE[n] for n, _ in EVERY_TYPE)])
    assert by_name == positional


# Edge forms: each row goes through the CLI and the Python host; both accept it with the same
# payload, or both refuse it.
EDGES: list[tuple[str, str, Any]] = [
    ("date", "d", "2024-1-5"), ("date", "d", " 2024-01-05"), ("date", "d", "+12345-01-01"),
    ("date", "d", "2023-02-29"), ("date", "d", "20240105"), ("date", "d", "2024-01-05 "),
    ("time", "t", "1:2:3"), ("time", "t", "23:59:60"), ("time", "t", "12:00:00.1234567891"),
    ("time", "t", "12:00"), ("timestamp", "ts", "2024-01-05T10:00:00"), ("timestamp", "ts", "2024-01-05  10:00:00.5"),
    ("timestamp", "ts", "2016-12-31 23:59:60.25"), ("timestamptz", "tz", "2024-01-05 10:00:00+0130"),
    ("timestamptz", "tz", "2024-01-05 10:00:00 -05"), ("timestamptz", "tz", "2024-01-05 10:00:00Z"),
    ("timestamptz", "tz", "2024-01-05t10:00:00.123z"), ("timestamptz", "tz", "2024-01-05 10:00:00"),
    ("timestamptz", "tz", "2024-01-05T10:00:00+24:00"), ("interval", "iv", "P1Y2M3DT4H5M6.5S"),
    ("interval", "iv", "-1 days -02:00:00"), ("interval", "iv", "3 mins"), ("interval", "iv", "1.5 hours"),
    ("interval", "iv", "P1W"), ("interval", "iv", "PT0.0000001S"), ("interval", "iv", "2 weeks 1 sec"),
    ("bytea", "by", "\\x+f00"), ("bytea", "by", "\\xABcd"), ("bytea", "by", "ff"),
    ("uuid", "u", "A7FFB08883F11B2D9BBC0685BCC3323C"), ("uuid", "u", "a7ffb088-83f11b2d-9bbc-0685bcc3323c"),
    ("numeric", "n", "-inf"), ("numeric", "n", "1e3"), ("numeric", "n", 1e21), ("numeric", "n", 0.1),
    ("numeric", "n", 123456789012345678), ("numeric", "n", ".5"), ("numeric", "n", "-0.0"),
    ("real", "r", "NaN"), ("real", "r", "nan"), ("real", "r", 3.4e38), ("double precision", "d", "-Infinity"),
    ("smallint", "s", 32768), ("integer", "i", 1.0), ("integer", "i", True), ("bigint", "big", 2**63),
    ("boolean", "b", 1), ("varchar", "v", 5), ("jsonb", "j", [1e-7, 1e16, 123.0, "é\u0001"]),
    ("jsonb", "j", {"b": 1, "a": {"d": 2, "c": 3}}), ("integer[]", "l", [1, "2"]),
]  # fmt: skip


@pytest.mark.parametrize("type_name,column,value", EDGES, ids=[f"{t}={v!r}" for t, _, v in EDGES])
async def test_json_lines_forms_as_the_cli_reads_them(server: Server, tmp_path: Path, type_name: str, column: str, value: Any) -> None:
    schema = [(column, type_name)]
    schema_file = tmp_path / "schema.json"
    schema_file.write_text(json.dumps({"columns": [{"name": column, "type": type_name}]}))
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({column: value}) + "\n")

    nc = await nats.connect(f"nats://{server.address}")
    sub = await nc.subscribe("v.cli")
    await nc.flush()
    cli = await asyncio.to_thread(run_cli, schema_file, rows, server.options("v.cli"))
    cli_payload = (await sub.next_msg(timeout=5)).data if cli.returncode == 0 else None
    await nc.close()
    assert cli.returncode in (0, 2), cli.stderr

    try:
        [python_payload] = await sink_rows(server, schema, [json.loads(rows.read_text())])
    except nats_sink.InvalidRow as e:
        assert cli_payload is None, f"the CLI accepted {value!r} as {cli_payload!r}; Python refused: {e}"
        assert e.row == 0 and e.column.startswith(column)
        return
    assert cli_payload == python_payload, f"the CLI {'refused' if cli_payload is None else 'wrote'} {cli_payload!r}: {cli.stderr.strip()}"
