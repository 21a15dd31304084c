"""A subclass of a builtin type is published as its base type holds it: no overridden method
(`__int__`, `__index__`, `__str__`, `__repr__`, `__format__`, comparisons, `encode`, getters)
decides the bytes. A zone whose `utcoffset` raises refuses its row."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal
from typing import Any

import pytest

import nats_sink
from conftest import Server
from test_values import sink_rows


class LyingInt(int):
    def __int__(self) -> int:
        return 666

    def __index__(self) -> int:
        return 666

    def __float__(self) -> float:
        return 666.0

    def __str__(self) -> str:
        return "666"

    __repr__ = __str__

    def __format__(self, spec: str) -> str:
        return "666"

    def __le__(self, other: Any) -> bool:
        return True

    __ge__ = __lt__ = __gt__ = __le__


class LyingFloat(float):
    def __float__(self) -> float:
        return 666.0

    def __repr__(self) -> str:
        return "666.0"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return "666"


class LyingDecimal(Decimal):
    def __str__(self) -> str:
        return "666"

    __repr__ = __str__

    def __format__(self, spec: str, *args: Any) -> str:
        return "666"

    def as_tuple(self) -> Any:
        return Decimal("666").as_tuple()


class LyingStr(str):
    def encode(self, *args: Any, **kwargs: Any) -> bytes:
        return b"666"

    def __str__(self) -> str:
        return "666"

    def __lt__(self, other: Any) -> bool:
        return not str.__lt__(self, other)


class LyingDate(dt.date):
    def __sub__(self, other: Any) -> Any:
        return dt.timedelta(days=666)

    @property
    def year(self) -> int:  # type: ignore[override]
        return 1666


class LyingDatetime(dt.datetime):
    @property
    def year(self) -> int:  # type: ignore[override]
        return 1666

    def utcoffset(self) -> Any:
        return dt.timedelta(hours=6)


class LyingDelta(dt.timedelta):
    def __lt__(self, other: Any) -> bool:
        return True

    @property
    def days(self) -> int:  # type: ignore[override]
        return 666


class LyingUuid(uuid.UUID):
    def __getattribute__(self, name: str) -> Any:
        return 666 if name == "int" else super().__getattribute__(name)


class RaisingZone(dt.tzinfo):
    def utcoffset(self, d: Any) -> dt.timedelta:
        raise RuntimeError("no zone here")


SCHEMA = [
    ("i", "integer"), ("big", "bigint"), ("n", "numeric"), ("nf", "numeric"), ("nd", "numeric"), ("d", "double precision"),
    ("df", "double precision"), ("v", "varchar"), ("day", "date"), ("ts", "timestamp"), ("tz", "timestamptz"),
    ("iv", "interval"), ("u", "uuid"), ("j", "jsonb"), ("l", "bigint[]"),
]  # fmt: skip
UTC = dt.timezone.utc


def row(i: Any, f: Any, d: Any, s: Any, day: Any, ts: Any, tz: Any, iv: Any, u: Any) -> dict[str, Any]:
    return {"i": i, "big": i, "n": i, "nf": f, "nd": d, "d": i, "df": f, "v": s, "day": day, "ts": ts, "tz": tz,
            "iv": iv, "u": u, "j": {s: [i, f, d, s]}, "l": [i]}  # fmt: skip


PLAIN = row(7, 0.5, Decimal("1.50"), "héllo", dt.date(2024, 2, 29), dt.datetime(2024, 2, 29, 1, 2, 3),
            dt.datetime(2024, 2, 29, 1, 2, 3, tzinfo=UTC), dt.timedelta(days=2, seconds=5),
            uuid.UUID(int=7))  # fmt: skip
LYING = row(LyingInt(7), LyingFloat(0.5), LyingDecimal("1.50"), LyingStr("héllo"), LyingDate(2024, 2, 29),
            LyingDatetime(2024, 2, 29, 1, 2, 3), LyingDatetime(2024, 2, 29, 1, 2, 3, tzinfo=UTC),
            LyingDelta(days=2, seconds=5), LyingUuid(int=7))  # fmt: skip


async def test_subclass_values_publish_what_the_base_type_holds(server: Server) -> None:
    plain, lying = await sink_rows(server, SCHEMA, [PLAIN, LYING])
    assert lying == plain
    assert b"666" not in lying
    got = json.loads(plain)
    assert (got["i"], got["nf"], got["nd"], got["df"], got["v"]) == (7, "0.5", "1.50", 0.5, "héllo")
    assert (got["day"], got["u"]) == (738945, "00000000-0000-0000-0000-000000000007")  # days from 0001-01-01


async def test_a_lying_comparison_does_not_let_an_int_past_its_range(server: Server) -> None:
    sink = await nats_sink.open(server.options("v.sub"), [("i", "integer")])
    with pytest.raises(nats_sink.InvalidRow, match="3000000000") as refused:
        await sink.write([{"i": LyingInt(3_000_000_000)}])
    assert refused.value.column == "i"
    await sink.close()


async def test_a_zone_whose_utcoffset_raises_refuses_the_row(server: Server) -> None:
    sink = await nats_sink.open(server.options("v.sub"), [("id", "integer"), ("tz", "timestamptz"), ("ts", "timestamp")])
    bad = dt.datetime(2024, 1, 1, tzinfo=RaisingZone())
    for column in ("tz", "ts"):
        with pytest.raises(nats_sink.InvalidRow, match=r"utcoffset\(\) raised RuntimeError: no zone here") as refused:
            await sink.write([{"id": 1, column: bad}])
        assert (refused.value.row, refused.value.column) == (0, column)
    await sink.flush()  # a refused row does not fail the sink
    await sink.close()


async def test_rows_that_raise_while_read_are_an_invalid_row_after_the_rows_before(server: Server) -> None:
    def rows() -> Any:
        yield (1,)
        yield (2,)
        raise ValueError("the source broke")

    class Unreadable:
        def __repr__(self) -> str:
            raise RuntimeError("no repr either")

    sink = await nats_sink.open(server.options("v.gen"), [("id", "integer")])
    with pytest.raises(nats_sink.InvalidRow, match="reading the rows raised ValueError: the source broke") as refused:
        await sink.write(rows())
    assert refused.value.row == 2
    with pytest.raises(nats_sink.InvalidRow, match=r"expected a 32-bit integer, got a Unreadable \(Unreadable\)"):
        await sink.write([(Unreadable(),)])  # a value whose preview fails is still refused by name
    await sink.flush()
    await sink.close()


class AgreeableStr(str):
    """Equal to everything, and hashing as `insert`: a lookup by its own equality would make any
    text an insert."""

    def __eq__(self, other: object) -> bool:
        return True

    def __hash__(self) -> int:
        return hash("insert")


def test_an_operation_is_read_by_its_text_not_a_subclass_equality() -> None:
    from nats_sink.changes import NotAChange, split_change

    with pytest.raises(NotAChange, match="'x' is not one of"):
        split_change((AgreeableStr("x"), {}))
    assert split_change((AgreeableStr("delete"), {})) == ("delete", {})
