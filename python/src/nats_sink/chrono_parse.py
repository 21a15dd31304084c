"""Date and time text, read exactly as the CLI reads it (cli/src/input/text.rs, through chrono 0.4).

chrono's `parse_from_str` is lenient in specific ways (numbers of 1..width digits, whitespace
skipped before each number, a signed year of any length); the CLI's forms are a handful of fixed
format strings, so this module interprets those formats the way chrono does, rather than
approximating them with Python's stricter `strptime` and rejecting rows the CLI accepts.
"""

from __future__ import annotations

from typing import Optional

# Rust's `char::is_whitespace` (Unicode White_Space); Python's isspace() differs (\x1c-\x1f).
_WS = frozenset(
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)


class _Fail(Exception):
    pass


def _trim(s: str) -> str:
    i = 0
    while i < len(s) and s[i] in _WS:
        i += 1
    return s[i:]


def _number(s: str, max_digits: int) -> tuple[str, int]:
    """chrono's scan::number: 1..max ASCII digits; more digits are left for the next item."""
    i = 0
    while i < len(s) and i < max_digits and "0" <= s[i] <= "9":
        i += 1
    if i == 0:
        raise _Fail
    return s[i:], int(s[:i])


def _nanos(s: str) -> tuple[str, int]:
    """Fraction digits: the first nine count, the rest are skipped. Digits past microseconds
    are refused (as the CLI refuses them) rather than cut off."""
    rest, v = _number(s, 9)
    v *= 10 ** (9 - (len(s) - len(rest)))
    i = 0
    while i < len(rest) and "0" <= rest[i] <= "9":
        if rest[i] != "0":
            raise _Fail
        i += 1
    if v % 1000:
        raise _Fail
    return rest[i:], v


def _offset(s: str, colon_or_space: bool, allow_zulu: bool, allow_missing_minutes: bool) -> tuple[str, int]:
    """chrono's scan::timezone_offset, in seconds east of UTC."""
    if allow_zulu and s[:1] in ("Z", "z"):
        return s[1:], 0
    if not s:
        raise _Fail
    if s[0] == "+":
        negative = False
    elif s[0] in ("-", "\u2212"):
        negative = True
    else:
        raise _Fail
    s = s[1:]
    if len(s) < 2 or not (s[0].isascii() and s[0].isdigit() and s[1].isascii() and s[1].isdigit()):
        raise _Fail
    hours = int(s[:2])
    s = s[2:]
    if colon_or_space:
        i = 0
        while i < len(s) and (s[i] == ":" or s[i] in _WS):
            i += 1
        s = s[i:]
    else:
        if s[:1] != ":":
            raise _Fail
        s = s[1:]
    if len(s) >= 2:
        if not ("0" <= s[0] <= "5" and "0" <= s[1] <= "9"):
            raise _Fail
        minutes = int(s[:2])
        s = s[2:]
    elif allow_missing_minutes and not s:
        minutes = 0
    else:
        raise _Fail
    seconds = hours * 3600 + minutes * 60
    return s, -seconds if negative else seconds


def _scan(s: str, fmt: str) -> dict[str, int]:
    """Interpret the strftime items the CLI uses: %Y %m %d %H %M %S %.f %:z %#z, spaces, literals."""
    parsed: dict[str, int] = {}
    widths = {"Y": 4, "m": 2, "d": 2, "H": 2, "M": 2, "S": 2}
    i = 0
    while i < len(fmt):
        c = fmt[i]
        if c == "%":
            spec = fmt[i + 1 : i + 3] if fmt[i + 1] in ".:#" else fmt[i + 1]
            i += 1 + len(spec)
            if spec in widths:
                s = _trim(s)
                if spec == "Y" and s[:1] in ("-", "+"):
                    sign = -1 if s[0] == "-" else 1
                    s, v = _number(s[1:], 10**9)
                    v *= sign
                else:
                    s, v = _number(s, widths[spec])
                parsed[spec] = v
            elif spec == ".f":
                if s.startswith("."):
                    s, parsed["f"] = _nanos(s[1:])
            elif spec == ":z":
                s, parsed["z"] = _offset(_trim(s), True, False, False)
            elif spec == "#z":
                s, parsed["z"] = _offset(_trim(s), True, True, True)
            else:
                raise ValueError(spec)
        elif c in _WS:
            s = _trim(s)
            i += 1
        else:
            if not s.startswith(c):
                raise _Fail
            s = s[1:]
            i += 1
    if s:
        raise _Fail
    return parsed


def days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm)."""
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _leap(y: int) -> bool:
    return y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)


# chrono's NaiveDate holds years -262143..=262142 (MIN_YEAR/MAX_YEAR in 0.4.45).
_MIN_YEAR, _MAX_YEAR = -262143, 262142


def _date(p: dict[str, int]) -> int:
    y, m, d = p["Y"], p["m"], p["d"]
    if not (_MIN_YEAR <= y <= _MAX_YEAR) or not 1 <= m <= 12:
        raise _Fail
    days_in = [31, 29 if _leap(y) else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m - 1]
    if not 1 <= d <= days_in:
        raise _Fail
    return days_from_civil(y, m, d)


def _time_micros(p: dict[str, int]) -> int:
    """Microseconds from midnight. A leap second (`:60`) is refused, as the CLI refuses it (it
    would roll into the next day)."""
    h, mi, sec, nano = p["H"], p["M"], p["S"], p.get("f", 0)
    if h > 23 or mi > 59 or sec > 59:
        raise _Fail
    return (h * 3600 + mi * 60 + sec) * 1_000_000 + nano // 1000


def _four_digit_year(s: str) -> bool:
    """Years are written with exactly four digits, as the CLI takes them (0001 to 9999)."""
    return len(s) > 4 and s[:4].isascii() and s[:4].isdigit() and s[:4] != "0000" and s[4] == "-"


def parse_date(s: str) -> Optional[int]:
    if not _four_digit_year(s):
        return None
    try:
        return _date(_scan(s, "%Y-%m-%d"))
    except (_Fail, KeyError):
        return None


def parse_time(s: str) -> Optional[int]:
    try:
        p = _scan(s, "%H:%M:%S%.f")
        if p["S"] == 60:  # a leap second has no place in a PostgreSQL time
            return None
        return _time_micros(p)
    except (_Fail, KeyError):
        return None


def _datetime(p: dict[str, int]) -> int:
    return _date(p) * 86_400_000_000 + _time_micros(p)


def parse_timestamp(s: str) -> Optional[int]:
    if not _four_digit_year(s):
        return None
    for fmt in ("%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"):
        try:
            return _datetime(_scan(s, fmt))
        except (_Fail, KeyError):
            pass
    return None


def _rfc3339(s: str) -> int:
    b = s
    if len(b) < 19:
        raise _Fail

    def digit(i: int) -> int:
        if not "0" <= b[i] <= "9":
            raise _Fail
        return int(b[i])

    year = digit(0) * 1000 + digit(1) * 100 + digit(2) * 10 + digit(3)
    if b[4] != "-":
        raise _Fail
    month = digit(5) * 10 + digit(6)
    if b[7] != "-":
        raise _Fail
    day = digit(8) * 10 + digit(9)
    days = _date({"Y": year, "m": month, "d": day})
    if b[10] not in "tT ":
        raise _Fail
    hour = digit(11) * 10 + digit(12)
    if b[13] != ":":
        raise _Fail
    minute = digit(14) * 10 + digit(15)
    if b[16] != ":":
        raise _Fail
    sec = digit(17) * 10 + digit(18)
    rest = b[19:]
    nano = 0
    if rest.startswith("."):
        rest, nano = _nanos(rest[1:])
    if hour > 23 or minute > 59 or sec > 59:
        raise _Fail
    rest, offset = _offset(rest, False, True, False)
    if rest or abs(offset) >= 86400:
        raise _Fail
    local = days * 86_400_000_000 + (hour * 3600 + minute * 60 + sec) * 1_000_000 + nano // 1000
    return local - offset * 1_000_000


def parse_timestamptz(s: str) -> Optional[int]:
    """RFC 3339, or a space-separated timestamp with an offset, or with `Z` (UTC); refused when
    the offset carries the instant past years 0001 to 9999, as the CLI refuses it."""
    micros = _timestamptz(s)
    return micros if micros is not None and within_years(micros) else None


def within_years(micros: int) -> bool:
    """The UTC instant lies in years 0001 to 9999, as a timestamptz's text form needs."""
    day = 86_400_000_000
    return days_from_civil(1, 1, 1) * day <= micros < days_from_civil(10000, 1, 1) * day


def _timestamptz(s: str) -> Optional[int]:
    if not _four_digit_year(s):
        return None
    try:
        return _rfc3339(s)
    except (_Fail, IndexError):
        pass
    for fmt in ("%Y-%m-%d %H:%M:%S%.f%:z", "%Y-%m-%d %H:%M:%S%.f%#z"):
        try:
            p = _scan(s, fmt)
            if abs(p["z"]) >= 86400:
                continue
            return _datetime(p) - p["z"] * 1_000_000
        except (_Fail, KeyError):
            pass
    if s.endswith("Z"):
        return parse_timestamp(s[:-1])
    return None
