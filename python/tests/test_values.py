"""Native Python values against their JSON Lines forms, and JSON Lines forms against the CLI."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Union

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


@dataclass(frozen=True)
class Refused:
    """The refusal both hosts give: the value's path and the reason, word for word."""

    column: str
    message: str


# Edge forms, each with the outcome both the CLI and the Python host must give: the exact
# payload, or the exact refusal.
EDGES: list[tuple[str, str, Any, Union[bytes, Refused]]] = [
    ('date', 'd', '2024-1-5', b'{"d":738890}'),
    ('date', 'd', ' 2024-01-05', Refused('d', 'expected a date `YYYY-MM-DD` (years 0001 to 9999), got a string " 2024-01-05"')),
    ('date', 'd', '+12345-01-01', Refused('d', 'expected a date `YYYY-MM-DD` (years 0001 to 9999), got a string "+12345-01-01"')),
    ('date', 'd', '2023-02-29', Refused('d', 'expected a date `YYYY-MM-DD` (years 0001 to 9999), got a string "2023-02-29"')),
    ('date', 'd', '20240105', Refused('d', 'expected a date `YYYY-MM-DD` (years 0001 to 9999), got a string "20240105"')),
    ('date', 'd', '2024-01-05 ', Refused('d', 'expected a date `YYYY-MM-DD` (years 0001 to 9999), got a string "2024-01-05 "')),
    ('time', 't', '1:2:3', b'{"t":3723000}'),
    ('time', 't', '23:59:60', Refused('t', 'expected a time `HH:MM:SS[.ffffff]` (seconds 00 to 59), got a string "23:59:60"')),
    ('time', 't', '12:00:00.1234567891', Refused('t', 'expected a time `HH:MM:SS[.ffffff]` (seconds 00 to 59), got a string "12:00:00.1234567891"')),
    ('time', 't', '12:00', Refused('t', 'expected a time `HH:MM:SS[.ffffff]` (seconds 00 to 59), got a string "12:00"')),
    ('timestamp', 'ts', '2024-01-05T10:00:00', b'{"ts":1704448800000}'),
    ('timestamp', 'ts', '2024-01-05  10:00:00.5', b'{"ts":1704448800500}'),
    ('timestamp', 'ts', '2016-12-31 23:59:60.25', Refused('ts', 'expected a timestamp `YYYY-MM-DD HH:MM:SS[.ffffff]` (years 0001 to 9999, seconds 00 to 59), got a string "2016-12-31 23:59:60.25"')),
    ('timestamptz', 'tz', '2024-01-05 10:00:00+0130', b'{"tz":"2024-01-05 08:30:00.000000"}'),
    ('timestamptz', 'tz', '2024-01-05 10:00:00 -05', b'{"tz":"2024-01-05 15:00:00.000000"}'),
    ('timestamptz', 'tz', '2024-01-05 10:00:00Z', b'{"tz":"2024-01-05 10:00:00.000000"}'),
    ('timestamptz', 'tz', '2024-01-05t10:00:00.123z', b'{"tz":"2024-01-05 10:00:00.123000"}'),
    ('timestamptz', 'tz', '2024-01-05 10:00:00', Refused('tz', 'expected a timestamptz with an offset or `Z` (years 0001 to 9999, seconds 00 to 59), got a string "2024-01-05 10:00:00"')),
    ('timestamptz', 'tz', '2024-01-05T10:00:00+24:00', Refused('tz', 'expected a timestamptz with an offset or `Z` (years 0001 to 9999, seconds 00 to 59), got a string "2024-01-05T10:00:00+24:00"')),
    ('interval', 'iv', 'P1Y2M3DT4H5M6.5S', b'{"iv":"P1Y2M3DT4H5M6.5S"}'),
    ('interval', 'iv', '-1 days -02:00:00', Refused('iv', "interval with a negative time part (-7200000000 µs) is refused: RisingWave's ISO 8601 form drops that sign, so it would publish as 7200000000 µs")),
    ('interval', 'iv', '3 mins', b'{"iv":"P0Y0M0DT0H3M0S"}'),
    ('interval', 'iv', '1.5 hours', Refused('iv', 'expected an interval (`P1Y2M3DT4H5M6S` or `1 day 02:00:00`), got a string "1.5 hours"')),
    ('interval', 'iv', 'P1W', b'{"iv":"P0Y0M7DT0H0M0S"}'),
    ('interval', 'iv', 'PT0.0000001S', Refused('iv', 'expected an interval (`P1Y2M3DT4H5M6S` or `1 day 02:00:00`), got a string "PT0.0000001S"')),
    ('interval', 'iv', '2 weeks 1 sec', b'{"iv":"P0Y0M14DT0H0M1S"}'),
    *[("interval", "iv", text, Refused("iv", f'interval "{text}" is out of range (months and days are 32-bit, the time part 64-bit microseconds)'))
      for text in ("2562047788 hours 2562047788 hours -2562047788 hours", "PT2562047788H2562047788H-2562047788H")],
    ('bytea', 'by', '\\x+f00', b'{"by":"DwA="}'),
    ('bytea', 'by', '\\xABcd', b'{"by":"q80="}'),
    ('bytea', 'by', 'ff', Refused('by', 'expected bytea as `\\x` hex, got a string "ff"')),
    ('uuid', 'u', 'A7FFB08883F11B2D9BBC0685BCC3323C', b'{"u":"a7ffb088-83f1-1b2d-9bbc-0685bcc3323c"}'),
    ('uuid', 'u', 'a7ffb088-83f11b2d-9bbc-0685bcc3323c', Refused('u', 'expected a uuid, got a string "a7ffb088-83f11b2d-9bbc-0685bcc3323c"')),
    ('numeric', 'n', '-inf', b'{"n":"-Infinity"}'),
    ('numeric', 'n', '1e3', Refused('n', '`1e3` is not a numeric (expected digits with an optional `-` and `.`, or NaN/Infinity/-Infinity)')),
    ('numeric', 'n', 1e+21, b'{"n":"1000000000000000000000"}'),
    ('numeric', 'n', 0.1, b'{"n":"0.1"}'),
    ('numeric', 'n', 123456789012345678, b'{"n":"123456789012345678"}'),
    ('numeric', 'n', '.5', Refused('n', '`.5` is not a numeric (expected digits with an optional `-` and `.`, or NaN/Infinity/-Infinity)')),
    ('numeric', 'n', '-0.0', b'{"n":"0.0"}'),
    ('real', 'r', 'NaN', b'{"r":null}'),
    ('real', 'r', 'nan', Refused('r', 'expected a number (or "NaN", "Infinity"), got a string "nan"')),
    ('real', 'r', 3.4e+38, b'{"r":3.3999999521443642e38}'),
    ('double precision', 'd', '-Infinity', b'{"d":null}'),
    ('smallint', 's', 32768, Refused('s', 'expected a smallint (-32768 to 32767), got a number 32768')),
    ('integer', 'i', 1.0, Refused('i', 'expected a 32-bit integer, got a number 1.0')),
    ('integer', 'i', True, Refused('i', 'expected a 32-bit integer, got a boolean true')),
    ('bigint', 'big', 9223372036854775808, Refused('big', 'expected a 64-bit integer, got a number 9223372036854775808')),
    ('boolean', 'b', 1, Refused('b', 'expected true or false, got a number 1')),
    ('varchar', 'v', 5, Refused('v', 'expected a string, got a number 5')),
    ('jsonb', 'j', [1e-07, 1e+16, 123.0, 'é\x01'], b'{"j":"[1e-7, 1e16, 123.0, \\"\xc3\xa9\\\\u0001\\"]"}'),
    ('jsonb', 'j', {'b': 1, 'a': {'d': 2, 'c': 3}}, b'{"j":"{\\"a\\": {\\"c\\": 3, \\"d\\": 2}, \\"b\\": 1}"}'),
    ('integer[]', 'l', [1, '2'], Refused('l[1]', 'expected a 32-bit integer, got a string "2"')),

]  # fmt: skip


@pytest.mark.parametrize("type_name,column,value,expected", EDGES, ids=[f"{t}={v!r}" for t, _, v, _ in EDGES])
async def test_json_lines_forms_as_both_hosts_read_them(server: Server, tmp_path: Path, type_name: str, column: str,
                                                        value: Any, expected: Union[bytes, Refused]) -> None:
    schema_file = tmp_path / "schema.json"
    schema_file.write_text(json.dumps({"columns": [{"name": column, "type": type_name}]}))
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({column: value}) + "\n")
    row = json.loads(rows.read_text())

    nc = await nats.connect(f"nats://{server.address}")
    sub = await nc.subscribe("v.cli")
    await nc.flush()
    cli = await asyncio.to_thread(run_cli, schema_file, rows, server.options("v.cli"))
    if isinstance(expected, Refused):
        assert cli.returncode == 2, cli.stderr
        assert f"line 1, column `{expected.column}`: {expected.message}" in cli.stderr
        with pytest.raises(nats_sink.InvalidRow) as refused:
            await sink_rows(server, [(column, type_name)], [row])
        assert (refused.value.row, refused.value.column, refused.value.message) == (0, expected.column, expected.message)
    else:
        assert cli.returncode == 0, cli.stderr
        assert (await sub.next_msg(timeout=5)).data == expected
        assert await sink_rows(server, [(column, type_name)], [row]) == [expected]
    await nc.close()
