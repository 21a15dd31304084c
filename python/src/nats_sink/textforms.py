"""The CLI's text forms for interval, bytea, uuid and numeric, rule for rule.

The CLI's are in cli/src/input/text.rs, and numeric's in rules/src/numeric.rs.
"""

from __future__ import annotations

from typing import Optional

from .chrono_parse import _WS

_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1


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


class IntervalError(Exception):
    """Why a text is not an interval (the CLI's `IntervalError`)."""


class IntervalMalformed(IntervalError):
    pass


class IntervalOutOfRange(IntervalError):
    """A part, or any sum along the way, is past the interval's range (32-bit months and days,
    64-bit microseconds): refused, never wrapped."""


_MICROS_PER_SECOND = 1_000_000
_MICROS_PER_MINUTE = 60 * _MICROS_PER_SECOND
_MICROS_PER_HOUR = 60 * _MICROS_PER_MINUTE


def _checked(v: int) -> int:
    """Rust's i64 `checked_*`: every intermediate must fit, as the CLI checks each step."""
    if not _I64_MIN <= v <= _I64_MAX:
        raise IntervalOutOfRange
    return v


def _all_digits(s: str) -> bool:
    return all("0" <= c <= "9" for c in s)


def _part(text: str) -> int:
    """An integer part; digits past i64 are out of range, not malformed."""
    digits = text[1:] if text.startswith(("-", "+")) else text
    if not digits or not _all_digits(digits):
        raise IntervalMalformed
    return _checked(int(text))


def _scaled(text: str, unit: int) -> int:
    return _checked(_part(text) * unit)


def _seconds_to_micros(s: str) -> int:
    """Seconds with an optional fraction, as microseconds (`6.5` -> 6500000)."""
    negative = s.startswith("-")
    if negative or s.startswith("+"):
        s = s[1:]
    whole, _, fraction = s.partition(".")
    if not whole or not _all_digits(whole) or not _all_digits(fraction) or len(fraction) > 6:
        raise IntervalMalformed
    micros = _checked(_scaled(whole, _MICROS_PER_SECOND) + int(fraction.ljust(6, "0")))
    return -micros if negative else micros


def _split_ws(s: str) -> list[str]:
    """Rust's `str::split_whitespace` (Unicode White_Space)."""
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


def _trim(s: str) -> str:
    """Rust's `str::trim`: Unicode whitespace off both ends."""
    start, end = 0, len(s)
    while start < end and s[start] in _WS:
        start += 1
    while end > start and s[end - 1] in _WS:
        end -= 1
    return s[start:end]


def _interval_parts(months: int, days: int, micros: int) -> tuple[int, int, int]:
    if not (-(2**31) <= months < 2**31 and -(2**31) <= days < 2**31):
        raise IntervalOutOfRange
    return months, days, micros


_UNITS = {
    **dict.fromkeys(("year", "yr", "y"), ("months", 12)),
    **dict.fromkeys(("mon", "month"), ("months", 1)),
    **dict.fromkeys(("week", "w"), ("days", 7)),
    **dict.fromkeys(("day", "d"), ("days", 1)),
    **dict.fromkeys(("hour", "hr", "h"), ("micros", _MICROS_PER_HOUR)),
    **dict.fromkeys(("minute", "min", "m"), ("micros", _MICROS_PER_MINUTE)),
}


def parse_interval(s: str) -> tuple[int, int, int]:
    """(months, days, micros) from ISO 8601 (`P1Y2M3DT4H5M6.5S`) or PostgreSQL text, step for
    step as cli/src/input/text.rs reads it; raises `IntervalMalformed` or `IntervalOutOfRange`.
    tests/vectors/text_forms.json holds both readers to the same answers."""
    s = _trim(s)
    if s.startswith("P"):
        return _parse_iso_interval(s[1:])
    total = {"months": 0, "days": 0, "micros": 0}
    tokens = _split_ws(s)
    if not tokens:
        raise IntervalMalformed
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if ":" in token:
            negative = token.startswith("-")
            clock = token[1:] if negative or token.startswith("+") else token
            parts = clock.split(":")
            if len(parts) == 2:
                h, m, sec = parts[0], parts[1], "0"
            elif len(parts) == 3:
                h, m, sec = parts
            else:
                raise IntervalMalformed
            if any(p.startswith(("-", "+")) for p in (h, m, sec)):
                raise IntervalMalformed
            clock_micros = _scaled(h, _MICROS_PER_HOUR)
            clock_micros = _checked(clock_micros + _scaled(m, _MICROS_PER_MINUTE))
            clock_micros = _checked(clock_micros + _seconds_to_micros(sec))
            total["micros"] = _checked(total["micros"] + (-clock_micros if negative else clock_micros))
            i += 1
            continue
        if i + 1 >= len(tokens):
            raise IntervalMalformed
        unit = _ascii_lower(tokens[i + 1]).rstrip("s")
        if unit in ("second", "sec"):
            total["micros"] = _checked(total["micros"] + _seconds_to_micros(token))
        elif unit in _UNITS:
            field, factor = _UNITS[unit]
            total[field] = _checked(total[field] + _scaled(token, factor))
        else:
            raise IntervalMalformed
        i += 2
    return _interval_parts(total["months"], total["days"], total["micros"])


_ISO_DATE_UNITS = {"Y": ("months", 12), "M": ("months", 1), "W": ("days", 7), "D": ("days", 1)}
_ISO_TIME_UNITS = {"H": _MICROS_PER_HOUR, "M": _MICROS_PER_MINUTE}


def _parse_iso_interval(s: str) -> tuple[int, int, int]:
    date_part, _, time_part = s.partition("T")
    total = {"months": 0, "days": 0, "micros": 0}
    number = ""
    for ch in date_part:
        if ch in "0123456789-+":
            number += ch
        elif ch in _ISO_DATE_UNITS:
            field, factor = _ISO_DATE_UNITS[ch]
            total[field] = _checked(total[field] + _scaled(number, factor))
            number = ""
        else:
            raise IntervalMalformed
    for ch in time_part:
        if ch in "0123456789-+.":
            number += ch
        elif ch in _ISO_TIME_UNITS:
            total["micros"] = _checked(total["micros"] + _scaled(number, _ISO_TIME_UNITS[ch]))
            number = ""
        elif ch == "S":
            total["micros"] = _checked(total["micros"] + _seconds_to_micros(number))
            number = ""
        else:
            raise IntervalMalformed
    if number or (not date_part and not time_part):
        raise IntervalMalformed
    return _interval_parts(total["months"], total["days"], total["micros"])
