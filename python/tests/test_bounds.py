"""Values beyond what a column holds (huge or tiny Decimals, huge ints, deep or cyclic jsonb)
are refused at once as `InvalidRow` naming the column, and the sink stays usable after."""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import nats
import pytest

import nats_sink
from conftest import Server, run_cli


def nested(levels: int) -> Any:
    value: Any = []
    for _ in range(levels - 1):
        value = [value]
    return value


def cyclic_dict() -> dict[str, Any]:
    d: dict[str, Any] = {"a": 1}
    d["self"] = d
    return d


def shared(levels: int) -> list[Any]:
    """A list that holds one list twice, `levels` deep: small in memory, 2**levels as text."""
    items: list[Any] = [0]
    for _ in range(levels):
        items = [items, items]
    return items


def cyclic_list() -> list[Any]:
    items: list[Any] = [1]
    items.append([2, items])
    return items


# (column type, value, words the refusal must hold)
REFUSED: list[tuple[str, Any, str]] = [
    ("numeric", Decimal("1e999999999"), "more significant digits than a numeric holds"),
    ("numeric", Decimal("-1e999999999"), "more significant digits than a numeric holds"),
    ("numeric", Decimal("1e-999999999"), "999999999 digits after the point; a numeric holds at most 28"),
    ("numeric", Decimal("0E-999999999"), "999999999 digits after the point"),
    ("numeric", Decimal("1E-29"), "29 digits after the point"),
    ("numeric", Decimal("79228162514264337593543950336"), "a 96-bit mantissa"),
    ("numeric", Decimal("7922816251426433759354395034E+1"), "a 96-bit mantissa"),
    ("numeric", 10**10000, "an integer of 33220 bits) has more significant digits"),
    ("numeric", Decimal("sNaN"), "signaling NaN"),
    ("jsonb", Decimal("1e999999999"), "out of range for a jsonb number"),
    ("jsonb", Decimal("-1e999999999"), "out of range for a jsonb number"),
    ("jsonb", {"k": [Decimal("1e-999999999")]}, "would round to zero"),
    ("jsonb", Decimal("0.10000000000000000001"), "no exact double-precision value"),
    ("jsonb", 2**64 + 1, "it would become 1.8446744073709552e19"),
    ("jsonb", 10**10000, "out of range for a jsonb number"),
    ("jsonb", Decimal("NaN"), "jsonb has no NaN"),
    ("jsonb", Decimal("-Infinity"), "jsonb has no -Infinity"),
    ("jsonb", Decimal("sNaN"), "jsonb has no sNaN"),
    ("jsonb", cyclic_dict(), "contains itself"),
    ("jsonb", cyclic_list(), "contains itself"),
    ("jsonb", nested(100_000), "at most 127 levels"),
    ("jsonb", nested(128), "at most 127 levels"),
    ("jsonb", {"k": "\ud800"}, "lone surrogate U+D800"),
    ("double precision", 10**400, "beyond the range of double precision"),
    ("real", 10**400, "beyond the range of double precision"),
    ("bigint", 10**10000, "expected a 64-bit integer, got a number (an integer of 33220 bits)"),
    ("integer", nested(100_000), "expected a 32-bit integer, got an array"),
    ("integer", shared(40), "expected a 32-bit integer, got an array"),
]  # fmt: skip


def case_id(case: tuple[str, Any, str]) -> str:
    type_name, value, _ = case
    if isinstance(value, int) and value.bit_length() > 64:
        return f"{type_name}=int{value.bit_length()}bits"
    shown = value if isinstance(value, Decimal) else type(value).__name__
    return f"{type_name}={shown}"


@pytest.mark.parametrize("type_name,value,reason", REFUSED, ids=[case_id(c) for c in REFUSED])
async def test_refused_at_once_and_the_sink_stays_usable(server: Server, type_name: str, value: Any, reason: str) -> None:
    nc = await nats.connect(f"nats://{server.address}")
    sub = await nc.subscribe("b.refused")
    await nc.flush()
    sink = await nats_sink.open(server.options("b.refused"), [("id", "integer"), ("c", type_name)])
    started = time.monotonic()
    with pytest.raises(nats_sink.InvalidRow) as refused:
        await sink.write([{"id": 1, "c": None}, {"id": 2, "c": value}, {"id": 3, "c": None}])
    assert time.monotonic() - started < 2, "a refusal must not build the value out first"
    assert refused.value.row == 1 and refused.value.column.startswith("c"), refused.value
    assert reason in refused.value.message
    assert len(str(refused.value)) < 2000  # the message names the value briefly
    await sink.write([{"id": 4, "c": None}])  # still usable
    await sink.flush()
    got = [json.loads((await sub.next_msg(timeout=5)).data)["id"] for _ in range(2)]
    assert got == [1, 4]
    with pytest.raises(nats.errors.TimeoutError):
        await sub.next_msg(timeout=0.2)
    await sink.close()
    await nc.close()


async def python_payloads(server: Server, type_name: str, values: list[Any]) -> list[Any]:
    nc = await nats.connect(f"nats://{server.address}")
    sub = await nc.subscribe("b.py")
    await nc.flush()
    sink = await nats_sink.open(server.options("b.py"), [("c", type_name)])
    await sink.write([{"c": v} for v in values])
    await sink.flush()
    await sink.close()
    out = [json.loads((await sub.next_msg(timeout=5)).data)["c"] for _ in values]
    await nc.close()
    return out


async def cli_payload(server: Server, tmp_path: Path, type_name: str, line: str) -> Any:
    """The CLI's payload for one JSON Lines row `{"c": <line>}`, or None when it refused it."""
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps({"columns": [{"name": "c", "type": type_name}]}))
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"c":' + line + "}\n")
    nc = await nats.connect(f"nats://{server.address}")
    sub = await nc.subscribe("b.cli")
    await nc.flush()
    cli = await asyncio.to_thread(run_cli, schema, rows, server.options("b.cli"))
    assert cli.returncode in (0, 2), cli.stderr
    payload = json.loads((await sub.next_msg(timeout=5)).data)["c"] if cli.returncode == 0 else None
    await nc.close()
    return payload


# Values at the edges that fit: published exactly, as the CLI publishes the same number.
FITS: list[tuple[str, Any, str]] = [
    ("numeric", Decimal("79228162514264337593543950335"), '"79228162514264337593543950335"'),
    ("numeric", Decimal("-7.9228162514264337593543950335"), '"-7.9228162514264337593543950335"'),
    ("numeric", Decimal("1.0000000000000000000000000000"), '"1.0000000000000000000000000000"'),
    ("numeric", Decimal("0E+999999999"), '"0"'),
    ("numeric", Decimal("-0"), '"-0"'),
    ("numeric", Decimal("-0.00"), '"-0.00"'),
    ("numeric", Decimal("NaN"), '"NaN"'),
    ("numeric", Decimal("-Infinity"), '"-Infinity"'),
    ("numeric", Decimal("1E+3"), '"1000"'),
    ("jsonb", Decimal("1.50"), "1.50"),
    ("jsonb", Decimal("1E+2"), "100"),
    ("jsonb", Decimal("1E+20"), "1e20"),
    ("jsonb", Decimal("-0"), "-0"),
    ("jsonb", Decimal("-0.0"), "-0.0"),
    ("jsonb", Decimal("0E-999999999"), "0.0"),
    ("jsonb", Decimal(2**64 - 1), str(2**64 - 1)),
    ("jsonb", Decimal(-(2**63)), str(-(2**63))),
    ("jsonb", Decimal("1.7976931348623157E+308"), "1.7976931348623157e308"),
    ("jsonb", Decimal("5E-324"), "5e-324"),
    ("jsonb", 10**20, "100000000000000000000"),
    ("jsonb", nested(127), "[" * 127 + "]" * 127),
]  # fmt: skip


@pytest.mark.parametrize("type_name,value,line", FITS, ids=[f"{t}={line[:20]}" for t, _, line in FITS])
async def test_values_that_fit_are_published_as_the_cli_publishes_them(
    server: Server, tmp_path: Path, type_name: str, value: Any, line: str
) -> None:
    [python] = await python_payloads(server, type_name, [value])
    cli = await cli_payload(server, tmp_path, type_name, line)
    assert cli is not None, f"the CLI refused {line[:40]}"
    assert python == cli
    if isinstance(value, int) or (isinstance(value, Decimal) and value.is_finite()):
        assert Decimal(python) == Decimal(value), "a number is published with its value"


async def test_the_cli_refuses_what_python_refuses_for_the_same_reason(server: Server, tmp_path: Path) -> None:
    # The guest is the reference for jsonb: out of range and too deep are refused by both.
    assert await cli_payload(server, tmp_path, "jsonb", "1e999999999") is None
    assert await cli_payload(server, tmp_path, "jsonb", "[" * 128 + "]" * 128) is None
    assert await cli_payload(server, tmp_path, "numeric", '"1' + "0" * 30 + '"') is None


async def test_a_refusal_inside_jsonb_names_the_path_to_the_value(server: Server) -> None:
    sink = await nats_sink.open(server.options("b.path"), [("c", "jsonb")])
    value = {"b": 1, "a": [0, {"z": Decimal("1e999999999")}]}
    with pytest.raises(nats_sink.InvalidRow) as refused:
        await sink.write([{"c": value}])
    assert refused.value.column == "c.a[1].z"
    with pytest.raises(nats_sink.InvalidRow) as too_deep:
        await sink.write([{"c": {"k": nested(127)}}])  # 128 levels with the object around it
    assert too_deep.value.column == "c.k" + "[0]" * 126
    await sink.close()


async def test_a_key_that_is_no_column_name_is_refused_briefly(server: Server) -> None:
    sink = await nats_sink.open(server.options("b.key"), [("id", "integer")])
    with pytest.raises(nats_sink.InvalidRow, match=r"a column name is a string, got a number \(an integer of 33220 bits\)"):
        await sink.write([{10**10000: 1}])
    await sink.write([{"id": 1}])
    await sink.flush()
    await sink.close()


async def test_a_jsonb_value_vast_as_text_is_refused_at_its_bound(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """Sharing one list 2**40 times is a few objects in memory and a terabyte of text."""
    monkeypatch.setattr(nats_sink.values, "JSONB_MAX_BYTES", 64 << 10)
    sink = await nats_sink.open(server.options("b.vast"), [("c", "jsonb")])
    with pytest.raises(nats_sink.InvalidRow) as refused:
        await sink.write([{"c": shared(40)}])
    assert "the jsonb text passes" in refused.value.message
    assert len(str(refused.value)) < 2000
    await sink.close()
