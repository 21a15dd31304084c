"""Python values (native, or as `json.loads` gives a JSON Lines row) to the WIT `rows` layout.

Each rule mirrors the CLI's reader (cli/src/input/): a value is converted exactly or refused
with the path of the offending value; nothing is rounded, wrapped or dropped. Native types
(Decimal, datetime, timedelta, UUID, bytes) are the Python spelling of the same values.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
import reprlib
import struct
import uuid
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence

from wasmtime.component import Record, Variant

from . import chrono_parse, textforms
from .plain import plain
from .schema import DataType, ListType, StructType
from .suggest import nearest


class ValueRefused(Exception):
    """A value that does not fit its column: `column` is its path (`addr.zip`, `tags[2]`)."""

    def __init__(self, column: str, message: str) -> None:
        super().__init__(f"column `{column}`: {message}")
        self.column, self.message = column, message


_RANGES = {
    "smallint": (-(2**15), 2**15 - 1, "a smallint (-32768 to 32767)", "int16"),
    "integer": (-(2**31), 2**31 - 1, "a 32-bit integer", "int32"),
    "bigint": (-(2**63), 2**63 - 1, "a 64-bit integer", "int64"),
    "serial": (-(2**63), 2**63 - 1, "a 64-bit integer", "serial"),
}
_EPOCH = dt.date(1970, 1, 1)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"


_PREVIEW = reprlib.Repr()
_PREVIEW.maxlevel, _PREVIEW.maxtuple, _PREVIEW.maxlist, _PREVIEW.maxdict = 3, 6, 6, 6
_PREVIEW.maxstring = _PREVIEW.maxother = 60


def _shown(value: Any) -> str:
    """A short preview of a refused value; never fails (huge ints, cycles, deep nesting, a
    subclass whose methods raise)."""
    try:
        value = plain(value)
        return _preview(value)
    except Exception:  # noqa: BLE001 - a preview must not replace the refusal it illustrates
        return f"({type(value).__name__})"


def _preview(value: Any) -> str:
    if _is_int(value) and value.bit_length() > 256:
        return f"(an integer of {value.bit_length()} bits)"
    if isinstance(value, decimal.Decimal):
        shown = str(value)
    elif isinstance(value, (list, tuple, Mapping)):
        # Bounded however large or shared the structure is (json.dumps would walk it all).
        shown = _PREVIEW.repr(value)
    else:
        try:
            shown = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError, RecursionError):
            shown = repr(value)
    return shown[:60] + "…" if len(shown) > 60 else shown


def _bad(path: str, expected: str, value: Any) -> ValueRefused:
    return ValueRefused(path, f"expected {expected}, got {_kind(value)} {_shown(value)}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def rust_display(f: float) -> str:
    """Rust's `format!("{f}")` of a finite f64: the shortest round-trip digits, no exponent."""
    text = format(decimal.Decimal(repr(f)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def ryu(f: float) -> str:
    """serde_json's (ryu's) text for a finite f64, as the CLI writes a jsonb number."""
    sign, digit_tuple, k = decimal.Decimal(repr(f)).as_tuple()
    digits = "".join(map(str, digit_tuple)).lstrip("0")
    if not digits:
        return ("-" if sign else "") + "0.0"
    stripped = digits.rstrip("0")
    k += len(digits) - len(stripped)  # value = stripped × 10^k
    digits, length = stripped, len(stripped)
    kk = length + k  # where the decimal point falls
    s = "-" if sign else ""
    if 0 <= k and kk <= 16:
        return s + digits + "0" * k + ".0"
    if 0 < kk <= 16:
        return s + digits[:kk] + "." + digits[kk:]
    if -5 < kk <= 0:
        return s + "0." + "0" * (-kk) + digits
    body = digits if length == 1 else digits[0] + "." + digits[1:]
    return f"{s}{body}e{kk - 1}"


# serde_json, which parses jsonb in the guest (and so for the CLI), refuses a 128th level.
JSONB_MAX_DEPTH = 127
# The longest jsonb text built for one value (NATS's own payload limit is at most 64 MiB).
JSONB_MAX_BYTES = 8 << 20
_I64_MIN, _U64_MAX = -(2**63), 2**64 - 1
_DOUBLE_NOTE = "jsonb holds a number other than a 64-bit integer as a double"


def _json_double(value: Any, exact: decimal.Decimal, path: str) -> str:
    """The text of a jsonb number the guest will hold as a double, if that keeps its value."""
    try:
        f = float(value)
    except OverflowError:
        f = math.inf
    if math.isinf(f):
        raise ValueRefused(path, f"{_shown(value)} is out of range for a jsonb number ({_DOUBLE_NOTE}, at most about 1.8e308)")
    if f == 0.0 and not exact.is_zero():
        raise ValueRefused(path, f"{_shown(value)} would round to zero as a jsonb number ({_DOUBLE_NOTE})")
    text = ryu(f)
    if decimal.Decimal(text) != exact:
        raise ValueRefused(path, f"{_shown(value)} has no exact double-precision value ({_DOUBLE_NOTE}; it would become {text})")
    return text


def _json_int(value: int, path: str) -> str:
    if _I64_MIN <= value <= _U64_MAX:
        return str(value)
    if value.bit_length() > 1100:  # far beyond any double: refuse before converting
        raise ValueRefused(path, f"{_shown(value)} is out of range for a jsonb number ({_DOUBLE_NOTE}, at most about 1.8e308)")
    return _json_double(value, decimal.Decimal(value), path)


def _json_decimal(value: decimal.Decimal, path: str) -> str:
    """A Decimal as the number text the guest publishes unchanged, or refused: never rounded.

    Never formats the Decimal positionally: `1E+999999999` would be a gigabyte of digits.
    """
    if not value.is_finite():
        raise ValueRefused(path, f"jsonb has no {value}")
    sign, _, exponent = value.as_tuple()
    # Without a point and within 64 bits, the guest keeps it as an integer (`-0` is a double).
    if isinstance(exponent, int) and exponent >= 0 and _I64_MIN <= value <= _U64_MAX and not (sign and value.is_zero()):
        return str(int(value))
    return _json_double(value, value, path)


def _json_scalar(value: Any, path: str) -> str:
    value = plain(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if _is_int(value):
        return _json_int(value, path)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueRefused(path, f"jsonb has no {value!r}")
        return ryu(value)
    if isinstance(value, decimal.Decimal):
        return _json_decimal(value, path)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    raise _bad(path, "a JSON value (dict, list, str, int, float, bool, None)", value)


# One part of a container's text: what goes before the child, the child, the child's path.
_Part = tuple[str, Any, str]


def _entries(obj: Mapping[str, Any], path: str) -> Iterator[_Part]:
    # Keys as str holds them: a subclass's comparisons or text cannot reorder or rename them.
    items = sorted(((str.__str__(k), v) for k, v in obj.items()), key=lambda item: item[0])
    for i, (key, value) in enumerate(items):
        if i and key == items[i - 1][0]:
            raise ValueRefused(f"{path}.{key}", f"the jsonb object has the key `{key}` twice")
        yield ("," if i else "") + json.dumps(key, ensure_ascii=False) + ":", value, f"{path}.{key}"


def _elements(items: Sequence[Any], path: str) -> Iterator[_Part]:
    for i, item in enumerate(items):
        yield "," if i else "", item, f"{path}[{i}]"


def _json_text(value: Any, path: str) -> str:
    """A jsonb value as serde_json writes it (keys sorted, compact, ryu numbers).

    Iterative, with the guest's depth limit and a check for containers holding themselves, so
    no value can exhaust Python's recursion.
    """
    out: list[str] = []
    size = 0
    open_containers: list[tuple[Iterator[_Part], str, int]] = []  # (parts, closer, id)
    on_path: set[int] = set()
    part: Optional[_Part] = ("", value, path)
    while True:
        if part is not None:
            prefix, v, p = part
            out.append(prefix)
            if isinstance(v, (list, tuple, Mapping)):
                if id(v) in on_path:
                    raise ValueRefused(p, "the jsonb value contains itself (a cycle)")
                if len(open_containers) == JSONB_MAX_DEPTH:
                    raise ValueRefused(p, f"jsonb nests at most {JSONB_MAX_DEPTH} levels of arrays and objects")
                if isinstance(v, Mapping):
                    if not all(isinstance(k, str) for k in v):
                        raise ValueRefused(p, "jsonb object keys must be strings")
                    out.append("{")
                    open_containers.append((_entries(v, p), "}", id(v)))
                else:
                    out.append("[")
                    open_containers.append((_elements(v, p), "]", id(v)))
                on_path.add(id(v))
            else:
                out.append(_json_scalar(v, p))
            # A value that shares one list many times over is small in memory and vast as
            # text: bounded here, as the sandbox bounds the guest.
            size += len(out[-1]) + len(prefix)
            if size > JSONB_MAX_BYTES:
                raise ValueRefused(p, f"the jsonb text passes {JSONB_MAX_BYTES >> 20} MiB")
        if not open_containers:
            return "".join(out)
        parts, closer, ident = open_containers[-1]
        part = next(parts, None)
        if part is None:
            out.append(closer)
            open_containers.pop()
            on_path.discard(ident)


def _float(value: Any, path: str, expected: str) -> float:
    if isinstance(value, float):
        return value
    if _is_int(value):
        try:
            f = float(value)
        except OverflowError:
            raise ValueRefused(path, f"{_shown(value)} is beyond the range of double precision (about 1.8e308)") from None
        if int(f) != value:  # the CLI's JSON reader would round; refuse instead
            raise ValueRefused(path, f"{value} has no exact double-precision value")
        return f
    if isinstance(value, str) and value in ("NaN", "Infinity", "-Infinity"):
        return float(value.replace("Infinity", "inf"))
    raise _bad(path, expected, value)


# RisingWave's numeric (rust_decimal): a 96-bit mantissa, at most 28 digits after the point.
NUMERIC_MAX_MANTISSA = 2**96 - 1
NUMERIC_MAX_SCALE = 28
_TOO_MANY_DIGITS = f"has more significant digits than a numeric holds (a 96-bit mantissa, at most {NUMERIC_MAX_MANTISSA})"


def _numeric_decimal(value: decimal.Decimal, path: str) -> str:
    """A finite Decimal's numeric text, bounded before it is written out (the guest's rule)."""
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    if -exponent > NUMERIC_MAX_SCALE:
        raise ValueRefused(path, f"{_shown(value)} has {-exponent} digits after the point; a numeric holds at most {NUMERIC_MAX_SCALE}")
    if not any(digits):
        return format(value, "f")  # zero: `0E+999999999` is written `0`, its scale kept otherwise
    # The mantissa is every digit written, the exponent's zeros included; 30 digits never fit.
    if len(digits) + max(exponent, 0) > 29 or int("".join(map(str, digits))) * 10 ** max(exponent, 0) > NUMERIC_MAX_MANTISSA:
        raise ValueRefused(path, f"{_shown(value)} {_TOO_MANY_DIGITS}")
    return format(value, "f")


def _numeric(value: Any, path: str) -> str:
    if _is_int(value):
        if abs(value) > NUMERIC_MAX_MANTISSA:
            raise ValueRefused(path, f"{_shown(value)} {_TOO_MANY_DIGITS}")
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _bad(path, "a number or a numeric string", value)
        return rust_display(value)
    if isinstance(value, decimal.Decimal):
        if value.is_snan():
            raise ValueRefused(path, "a signaling NaN (Decimal('sNaN')) is not a value; use Decimal('NaN')")
        if value.is_nan():
            return "NaN"
        if value.is_infinite():
            return "-Infinity" if value < 0 else "Infinity"
        return _numeric_decimal(value, path)
    if isinstance(value, str):
        text = textforms.numeric_from_text(value)
        if text is not None:
            return text
        shown = value if len(value) <= 200 else value[:100] + "…" + value[-100:]
        # The CLI's words for it (rules/src/numeric.rs).
        raise ValueRefused(path, f"`{shown}` is not a numeric (expected digits with an optional `-` and `.`, or NaN/Infinity/-Infinity)")
    raise _bad(path, "a number or a numeric string", value)


def _time_of(t: dt.time) -> int:
    return ((t.hour * 60 + t.minute) * 60 + t.second) * 1_000_000 + t.microsecond


def _naive_micros(t: dt.datetime) -> int:
    return chrono_parse.days_from_civil(t.year, t.month, t.day) * 86_400_000_000 + _time_of(t.time())


def _interval(td: dt.timedelta) -> tuple[int, int, int]:
    """A timedelta's days stay days and the rest is microseconds, both with the delta's sign."""
    sign = -1 if td < dt.timedelta(0) else 1
    td = abs(td)
    return 0, sign * td.days, sign * (td.seconds * 1_000_000 + td.microseconds)


# A converted value: (wit tag, payload) for scalars, ("list"|"struct", [children]) for composites.
Node = tuple[str, Any]


def convert(ty: DataType, value: Any, path: str) -> Node:
    if value is None:
        return ("null", None)
    if isinstance(ty, ListType):
        if not isinstance(value, (list, tuple)):
            raise _bad(path, "an array", value)
        return ("list", [convert(ty.element, v, f"{path}[{i}]") for i, v in enumerate(value)])
    if isinstance(ty, StructType):
        return ("struct", _fields(ty.fields, value, path))
    try:
        return _SCALARS[ty](plain(value), path)
    except ValueRefused:
        raise
    except Exception as e:  # noqa: BLE001 - a value's own code raised: the row is refused, never the sink
        raise ValueRefused(path, f"reading the {type(value).__name__} value raised {_error_text(e)}") from None


def _error_text(e: BaseException) -> str:
    try:
        text = str(e)
    except Exception:  # noqa: BLE001 - an exception whose text fails is still named
        text = ""
    text = text if len(text) <= 200 else text[:200] + "…"
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _fields(fields: Sequence[tuple[str, DataType]], value: Any, path: str) -> list[Node]:
    if isinstance(value, tuple):
        if len(value) != len(fields):
            raise ValueRefused(path, f"expected {len(fields)} struct fields, got {len(value)}")
        return [convert(t, v, f"{path}.{n}") for (n, t), v in zip(fields, value)]
    if not isinstance(value, Mapping):
        raise _bad(path, "an object", value)
    names = {n for n, _ in fields}
    for key in value:
        if key not in names:
            raise ValueRefused(path, f"unknown struct field `{key}`")
    return [convert(t, value.get(n), f"{path}.{n}") for n, t in fields]


def _boolean(v: Any, p: str) -> Node:
    if isinstance(v, bool):
        return ("boolean", v)
    raise _bad(p, "true or false", v)


def _integer(kind: str) -> Callable[[Any, str], Node]:
    lo, hi, expected, tag = _RANGES[kind]

    def conv(v: Any, p: str) -> Node:
        if _is_int(v) and lo <= v <= hi:
            return (tag, int(v))
        raise _bad(p, expected, v)

    return conv


def _real(v: Any, p: str) -> Node:
    f = _float(v, p, 'a number (or "NaN", "Infinity")')
    try:
        # real is f32 as in RisingWave (1.1 is stored as 1.100000023841858), but never overflows.
        narrowed = struct.unpack("<f", struct.pack("<f", f))[0]
    except OverflowError:
        raise ValueRefused(p, f"{f!r} is beyond the range of real") from None
    if narrowed == 0.0 and f != 0.0:
        # As the CLI: a non-zero value that would become 0 is refused, not changed.
        raise ValueRefused(p, f"{f!r} is out of range for real (it would round to zero)")
    return ("float32", narrowed)


def _double(v: Any, p: str) -> Node:
    return ("float64", _float(v, p, 'a number (or "NaN", "Infinity")'))


def _varchar(v: Any, p: str) -> Node:
    if isinstance(v, str):
        return ("text", str.encode(v, "utf-8", "surrogatepass"))
    raise _bad(p, "a string", v)


def _date(v: Any, p: str) -> Node:
    if isinstance(v, dt.date) and not isinstance(v, dt.datetime):
        return ("date", (v - _EPOCH).days)
    days = chrono_parse.parse_date(v) if isinstance(v, str) else None
    if days is None or not -(2**31) <= days < 2**31:
        raise _bad(p, "a date `YYYY-MM-DD` (years 0001 to 9999)", v)
    return ("date", days)


def _time(v: Any, p: str) -> Node:
    if isinstance(v, dt.time):
        if v.tzinfo is not None:
            raise ValueRefused(p, f"a time column has no zone; got {v.isoformat()}")
        return ("time", _time_of(v))
    micros = chrono_parse.parse_time(v) if isinstance(v, str) else None
    if micros is None:
        raise _bad(p, "a time `HH:MM:SS[.ffffff]` (seconds 00 to 59)", v)
    return ("time", micros)


def _offset(v: dt.datetime, p: str) -> Optional[dt.timedelta]:
    """The zone's offset at `v`; a `tzinfo` whose `utcoffset` raises refuses the row."""
    try:
        offset = v.utcoffset()
        return None if offset is None else plain(offset)  # a timedelta subclass's arithmetic is not asked
    except Exception as e:  # noqa: BLE001 - the tzinfo is the caller's code
        raise ValueRefused(p, f"its tzinfo {type(v.tzinfo).__name__}.utcoffset() raised {_error_text(e)}") from None


def _timestamp(v: Any, p: str) -> Node:
    if isinstance(v, dt.datetime):
        if v.tzinfo is not None and _offset(v, p) is not None:
            raise ValueRefused(p, f"a timestamp column has no zone; got {v.isoformat()} (use timestamptz)")
        return ("timestamp", _naive_micros(v))
    micros = chrono_parse.parse_timestamp(v) if isinstance(v, str) else None
    if micros is None:
        raise _bad(p, "a timestamp `YYYY-MM-DD HH:MM:SS[.ffffff]` (years 0001 to 9999, seconds 00 to 59)", v)
    return ("timestamp", micros)


def _timestamptz(v: Any, p: str) -> Node:
    if isinstance(v, dt.datetime):
        offset = _offset(v, p)
        if offset is None:
            raise ValueRefused(p, f"a timestamptz needs a zone; got the naive {v.isoformat()}")
        micros = _naive_micros(v) - offset // dt.timedelta(microseconds=1)
        if not chrono_parse.within_years(micros):
            # As the CLI: the offset must not carry the instant past years 0001 to 9999.
            raise ValueRefused(p, f"{v.isoformat()} is outside years 0001 to 9999 in UTC")
        return ("timestamptz", micros)
    micros = chrono_parse.parse_timestamptz(v) if isinstance(v, str) else None
    if micros is None:
        raise _bad(p, "a timestamptz with an offset or `Z` (years 0001 to 9999, seconds 00 to 59)", v)
    return ("timestamptz", micros)


_INTERVAL_EXPECTED = "an interval (`P1Y2M3DT4H5M6S` or `1 day 02:00:00`)"


def _interval_conv(v: Any, p: str) -> Node:
    if isinstance(v, dt.timedelta):
        return ("interval", _interval(v))
    if not isinstance(v, str):
        raise _bad(p, _INTERVAL_EXPECTED, v)
    try:
        return ("interval", textforms.parse_interval(v))
    except textforms.IntervalMalformed:
        raise _bad(p, _INTERVAL_EXPECTED, v) from None
    except textforms.IntervalOutOfRange:
        raise ValueRefused(
            p, f"interval {_shown(v)} is out of range (months and days are 32-bit, the time part 64-bit microseconds)"
        ) from None


def _bytea(v: Any, p: str) -> Node:
    if isinstance(v, (bytes, bytearray, memoryview)):
        return ("bytea", bytes(v))
    raw = textforms.parse_bytea(v) if isinstance(v, str) else None
    if raw is None:
        raise _bad(p, "bytea as `\\x` hex", v)
    return ("bytea", raw)


def _jsonb(v: Any, p: str) -> Node:
    text = _json_text(v, p)
    try:
        return ("jsonb", text.encode("utf-8"))
    except UnicodeEncodeError as e:
        code = ord(text[e.start])
        raise ValueRefused(p, f"a jsonb string holds the lone surrogate U+{code:04X}, which is not valid UTF-8") from None


def _uuid(v: Any, p: str) -> Node:
    if isinstance(v, uuid.UUID):
        n = v.int
    else:
        parsed = textforms.parse_uuid(v) if isinstance(v, str) else None
        if parsed is None:
            raise _bad(p, "a uuid", v)
        n = parsed
    return ("uuid", (n >> 64, n & (2**64 - 1)))


_SCALARS: dict[str, Callable[[Any, str], Node]] = {
    "boolean": _boolean,
    "smallint": _integer("smallint"),
    "integer": _integer("integer"),
    "bigint": _integer("bigint"),
    "serial": _integer("serial"),
    "real": _real,
    "double": _double,
    "numeric": lambda v, p: ("decimal", _numeric(v, p).encode()),
    "varchar": _varchar,
    "date": _date,
    "time": _time,
    "timestamp": _timestamp,
    "timestamptz": _timestamptz,
    "interval": _interval_conv,
    "bytea": _bytea,
    "jsonb": _jsonb,
    "uuid": _uuid,
}


def row_nodes(columns: Sequence[tuple[str, DataType]], row: Any) -> list[Node]:
    """One row (a mapping by column name, or a sequence in schema order) as converted values."""
    if isinstance(row, Mapping):
        names = [n for n, _ in columns]
        known = set(names)
        for key in row:
            if key not in known:
                if not isinstance(key, str):
                    raise ValueRefused("", f"a column name is a string, got {_kind(key)} {_shown(key)}")
                hint = nearest(key, names)
                raise ValueRefused(str(key), f"unknown column `{key}`" + (f"; did you mean `{hint}`?" if hint else ""))
        return [convert(t, row.get(n), n) for n, t in columns]
    if isinstance(row, (tuple, list)):
        if len(row) != len(columns):
            raise ValueRefused("", f"expected {len(columns)} values, got {len(row)}")
        return [convert(t, v, n) for (n, t), v in zip(columns, row)]
    raise ValueRefused("", f"a row is a dict by column name or a tuple in schema order, got {type(row).__name__}")


# Bytes JSON escapes (as rules/src/json_string.rs): control bytes, `"` and `\`.
_ESCAPED = bytes(range(0x20)) + b'"\\'
# How the guest escapes them (serde_json's forms): these in two bytes (`\"`, `\n`), the other
# control bytes in six (`\u0001`).
SHORT_ESCAPED = b'"\\\x08\x0c\n\r\t'
LONG_ESCAPED = bytes(b for b in _ESCAPED if b not in SHORT_ESCAPED)
_NOT_SHORT = bytes(b for b in range(256) if b not in SHORT_ESCAPED)
_NOT_LONG = bytes(b for b in range(256) if b not in LONG_ESCAPED)


# The longest JSON text of each fixed-size value (an interval: `"P-178956970Y-8M-2147483648DT..."`);
# a list or a struct, its brackets (its children count for themselves).
_SCALAR_TEXT = {
    "null": 4, "boolean": 5, "int16": 6, "int32": 11, "int64": 20, "serial": 24, "float32": 32, "float64": 32,
    "date": 16, "time": 24, "timestamp": 36, "timestamptz": 40, "interval": 72, "uuid": 40, "list": 2, "struct": 2,
}  # fmt: skip
_UNKNOWN_TEXT = 72


def text_bound(tag: str, payload: bytes) -> int:
    """At most how many bytes a value's bytes take in the guest's JSON text."""
    if tag == "text":  # escaped: two bytes or six for each byte that needs it, and quoted
        return len(payload) + len(payload.translate(None, _NOT_SHORT)) + 5 * len(payload.translate(None, _NOT_LONG)) + 2
    if tag == "bytea":  # `"\\x` and two hex digits a byte
        return 2 * len(payload) + 6
    return 2 * len(payload) + 2  # numeric and jsonb text, as given (twice: a margin for jsonb)


class RowsBuilder:
    """Packs converted rows into the WIT `rows` record: flat values, row ends, one byte buffer."""

    _SPANS = frozenset(("decimal", "text", "bytea", "jsonb"))

    def __init__(self) -> None:
        self.values: list[Variant] = []
        self.ends: list[int] = []
        self.data = bytearray()
        self._data_starts: list[int] = []  # where each row's bytes begin, to take it back
        self.ops: list[str] = []  # each row's WIT `op`

    def __len__(self) -> int:
        return len(self.ends)

    @property
    def value_count(self) -> int:
        return len(self.values)

    @property
    def data_len(self) -> int:
        return len(self.data)

    def pop(self) -> None:
        """Take the last row back out (it goes in the next crossing instead)."""
        self.ends.pop()
        self.ops.pop()
        del self.values[self.ends[-1] if self.ends else 0 :]
        del self.data[self._data_starts.pop() :]

    def push(self, nodes: list[Node], op: str = "insert") -> int:
        """Add one row with its WIT `op`; returns at most how many bytes of JSON its values
        become (keys aside)."""
        self.ops.append(op)
        text = 0
        base = len(self.values)
        self._data_starts.append(len(self.data))
        # Breadth-first: every composite's children sit together, after it.
        pending: list[tuple[int, Node]] = []
        self.values.extend([None] * len(nodes))  # type: ignore[list-item]
        pending.extend((base + i, n) for i, n in enumerate(nodes))
        while pending:
            slot, (tag, payload) = pending.pop()
            text += _SCALAR_TEXT.get(tag, _UNKNOWN_TEXT) if tag not in self._SPANS else 0
            if tag in ("list", "struct"):
                start = len(self.values)
                self.values.extend([None] * len(payload))  # type: ignore[list-item]
                pending.extend((start + i, n) for i, n in enumerate(payload))
                self.values[slot] = Variant(tag, _record(start=start - base, len=len(payload)))
            elif tag in self._SPANS:
                self.values[slot] = Variant(tag, _record(start=len(self.data), len=len(payload)))
                self.data += payload
                text += text_bound(tag, payload)
            elif tag == "interval":
                months, days, micros = payload
                self.values[slot] = Variant(tag, _record(months=months, days=days, micros=micros))
            elif tag == "null":
                self.values[slot] = Variant("null")
            else:
                self.values[slot] = Variant(tag, payload)
        self.ends.append(len(self.values))
        return text

    def record(self) -> Record:
        # No ops at all when every row is an insert, as the WIT allows.
        ops = self.ops if any(op != "insert" for op in self.ops) else []
        return _record(values=self.values, ends=self.ends, data=bytes(self.data), ops=ops)

    @property
    def last_op(self) -> Optional[str]:
        return self.ops[-1] if self.ops else None


def _record(**fields: Any) -> Record:
    r = Record()
    for k, v in fields.items():
        setattr(r, k, v)
    return r
