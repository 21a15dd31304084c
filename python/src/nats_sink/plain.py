"""A scalar as its base type holds it, whatever a subclass overrides.

An `int` subclass may override `__int__`, `__index__`, `__str__`, `__repr__`, `__format__` or its
comparisons; a `str` subclass `encode`; a `datetime` subclass its fields' getters. The sink must
publish the value given, not what such a method says, so every scalar is first copied out of its
base type's own storage (`int.__int__`, `float.__float__`, `str.__str__`, `Decimal(d)`, the
`datetime` getters read through `datetime`'s own descriptors) into an object of the exact type.
Every conversion after this one sees only exact builtin types.
"""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from typing import Any

# Exact types need no copy (bool cannot be subclassed).
_EXACT = frozenset((type(None), bool, int, float, str, bytes, decimal.Decimal, dt.date, dt.datetime,
                    dt.time, dt.timedelta, uuid.UUID))  # fmt: skip


def _date_fields(v: dt.date) -> tuple[int, int, int]:
    return dt.date.year.__get__(v), dt.date.month.__get__(v), dt.date.day.__get__(v)


def _time_fields(v: Any, kind: type) -> tuple[int, int, int, int]:
    return kind.hour.__get__(v), kind.minute.__get__(v), kind.second.__get__(v), kind.microsecond.__get__(v)


def plain(value: Any) -> Any:
    """`value` as an object of the exact builtin type it is an instance of; others unchanged.

    A `tzinfo` stays as given: its `utcoffset` is the zone, by the datetime contract.
    """
    kind = type(value)
    if kind in _EXACT:
        return value
    if isinstance(value, int):
        return int.__int__(value)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, decimal.Decimal):
        return decimal.Decimal(value)  # copies the number itself, never asking the subclass
    if isinstance(value, bytes):
        return bytes.__getitem__(value, slice(None))
    if isinstance(value, bytearray):
        return bytes(bytearray.__getitem__(value, slice(None)))
    if isinstance(value, dt.datetime):
        return dt.datetime(*_date_fields(value), *_time_fields(value, dt.datetime),
                           tzinfo=dt.datetime.tzinfo.__get__(value), fold=dt.datetime.fold.__get__(value))
    if isinstance(value, dt.date):
        return dt.date(*_date_fields(value))
    if isinstance(value, dt.time):
        return dt.time(*_time_fields(value, dt.time), tzinfo=dt.time.tzinfo.__get__(value),
                       fold=dt.time.fold.__get__(value))
    if isinstance(value, dt.timedelta):
        return dt.timedelta(days=dt.timedelta.days.__get__(value), seconds=dt.timedelta.seconds.__get__(value),
                            microseconds=dt.timedelta.microseconds.__get__(value))
    if isinstance(value, uuid.UUID):
        return uuid.UUID(int=uuid.UUID.int.__get__(value))
    return value
