"""The CLI's text forms for interval, bytea, uuid and numeric, rule for rule.

The CLI's are in cli/src/input/text.rs, and numeric's in rules/src/numeric.rs.
"""

from __future__ import annotations

import re
from typing import Optional

from .chrono_parse import _WS

_I64 = re.compile(r"[+-]?[0-9]+\Z")
_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1


def _i64(s: str) -> Optional[int]:
    """Rust's `str::parse::<i64>`: an optional sign and ASCII digits, nothing else."""
    if not _I64.match(s):
        return None
    v = int(s)
    return v if _I64_MIN <= v <= _I64_MAX else None


def _mul(a: Optional[int], b: int) -> Optional[int]:
    if a is None:
        return None
    v = a * b
    return v if _I64_MIN <= v <= _I64_MAX else None


def check_numeric(text: str) -> bool:
    """The guest's rule: digits with an optional `-` and `.`, or NaN/Infinity/-Infinity."""
    if text in ("NaN", "Infinity", "-Infinity"):
        return True
    digits = text[1:] if text.startswith("-") else text
    whole, dot, fraction = digits.partition(".")

    def all_digits(s: str) -> bool:
        return bool(s) and all("0" <= c <= "9" for c in s)

    return all_digits(whole) and (not dot or all_digits(fraction))


def numeric_from_text(s: str) -> Optional[str]:
    special = {"nan": "NaN", "infinity": "Infinity", "inf": "Infinity", "-infinity": "-Infinity", "-inf": "-Infinity"}
    text = special.get(_ascii_lower(s), s)
    return text if check_numeric(text) else None


def _ascii_lower(s: str) -> str:
    return "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in s)


def parse_bytea(s: str) -> Optional[bytes]:
    if not s.startswith("\\x"):
        return None
    raw = s[2:].encode("utf-8")
    if len(raw) % 2:
        return None
    out = bytearray()
    for i in range(0, len(raw), 2):
        pair = raw[i : i + 2]
        # u8::from_str_radix accepts a leading `+` (`+f` is 15); any other non-hex byte is refused.
        digits = pair[1:] if pair[:1] == b"+" else pair
        if not digits or not all(c in b"0123456789abcdefABCDEF" for c in digits):
            return None
        out.append(int(digits, 16))
    return bytes(out)


def parse_uuid(s: str) -> Optional[int]:
    groups = s.split("-")
    lengths = [len(g.encode("utf-8")) for g in groups]
    if lengths != [8, 4, 4, 4, 12] and lengths != [32]:
        return None
    hexdigits = "".join(groups)
    if not all(c in "0123456789abcdefABCDEF" for c in hexdigits):
        return None
    return int(hexdigits, 16)


def _seconds_to_micros(s: str) -> Optional[int]:
    negative = s.startswith("-")
    if negative:
        s = s[1:]
    whole, _, fraction = s.partition(".")
    if (
        not whole
        or not all("0" <= c <= "9" for c in whole)
        or not all("0" <= c <= "9" for c in fraction)
        or len(fraction) > 6
    ):
        return None
    w = _mul(_i64(whole), 1_000_000)
    if w is None:
        return None
    micros = w + int(fraction.ljust(6, "0"))
    return -micros if negative else micros


def _split_ws(s: str) -> list[str]:
    tokens, current = [], ""
    for c in s:
        if c in _WS:
            if current:
                tokens.append(current)
            current = ""
        else:
            current += c
    if current:
        tokens.append(current)
    return tokens


def _fits(months: int, days: int, micros: int) -> Optional[tuple[int, int, int]]:
    if not (-(2**31) <= months < 2**31 and -(2**31) <= days < 2**31 and _I64_MIN <= micros <= _I64_MAX):
        return None
    return months, days, micros


def parse_interval(s: str) -> Optional[tuple[int, int, int]]:
    """(months, days, micros) from ISO 8601 (`P1Y2M3DT4H5M6.5S`) or PostgreSQL text."""
    s = "".join(_split_ws_keep(s))
    if s.startswith("P"):
        return _parse_iso_interval(s[1:])
    months = days = micros = 0
    tokens = _split_ws(s)
    if not tokens:
        return None
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if ":" in token:
            if token.startswith("-"):
                negative, clock = True, token[1:]
            else:
                negative, clock = False, token[1:] if token.startswith("+") else token
            parts = clock.split(":")
            if len(parts) == 2:
                h, m, sec = parts[0], parts[1], "0"
            elif len(parts) == 3:
                h, m, sec = parts
            else:
                return None
            hh, mm, ss = _mul(_i64(h), 3_600_000_000), _mul(_i64(m), 60_000_000), _seconds_to_micros(sec)
            if hh is None or mm is None or ss is None:
                return None
            clock_micros = hh + mm + ss
            micros += -clock_micros if negative else clock_micros
            i += 1
            continue
        if i + 1 >= len(tokens):
            return None
        unit = _ascii_lower(tokens[i + 1]).rstrip("s")
        n = _i64(token)
        if unit in ("year", "yr", "y"):
            v = _mul(n, 12)
            months += v if v is not None else _none()
        elif unit in ("mon", "month"):
            months += n if n is not None else _none()
        elif unit in ("week", "w"):
            v = _mul(n, 7)
            days += v if v is not None else _none()
        elif unit in ("day", "d"):
            days += n if n is not None else _none()
        elif unit in ("hour", "hr", "h"):
            v = _mul(n, 3_600_000_000)
            micros += v if v is not None else _none()
        elif unit in ("minute", "min", "m"):
            v = _mul(n, 60_000_000)
            micros += v if v is not None else _none()
        elif unit in ("second", "sec"):
            v = _seconds_to_micros(token)
            micros += v if v is not None else _none()
        else:
            return None
        i += 2
    return _fits(months, days, micros)


class _Refused(Exception):
    pass


def _none() -> int:
    raise _Refused


def _split_ws_keep(s: str) -> str:
    """Rust's `str::trim`: Unicode whitespace off both ends."""
    start, end = 0, len(s)
    while start < end and s[start] in _WS:
        start += 1
    while end > start and s[end - 1] in _WS:
        end -= 1
    return s[start:end]


def _parse_iso_interval(s: str) -> Optional[tuple[int, int, int]]:
    date_part, has_t, time_part = s.partition("T")
    months = days = micros = 0
    number = ""
    units = {"Y": ("m", 12), "M": ("m", 1), "W": ("d", 7), "D": ("d", 1)}
    for ch in date_part:
        if ch in "0123456789-+":
            number += ch
        elif ch in units:
            kind, factor = units[ch]
            v = _mul(_i64(number), factor)
            if v is None:
                return None
            number = ""
            if kind == "m":
                months += v
            else:
                days += v
        else:
            return None
    for ch in time_part:
        if ch in "0123456789-+.":
            number += ch
        elif ch in "HM":
            v = _mul(_i64(number), 3_600_000_000 if ch == "H" else 60_000_000)
            if v is None:
                return None
            number = ""
            micros += v
        elif ch == "S":
            v = _seconds_to_micros(number)
            if v is None:
                return None
            number = ""
            micros += v
        else:
            return None
    if number or (not date_part and not time_part):
        return None
    return _fits(months, days, micros)


def parse_interval_safe(s: str) -> Optional[tuple[int, int, int]]:
    try:
        return parse_interval(s)
    except _Refused:
        return None
