"""Durations as operators write them: "200ms", "2s", "1.5s", "1m30s".

`parse_duration` turns such a string into float seconds; `format_duration`
turns seconds back into the shortest such string, so what paxosctl prints
can be pasted back into a manifest.

Grammar: one or more `<number><unit>` parts with nothing between them, where
`<number>` is decimal digits with an optional fraction ("1", "1.5", ".5") and
`<unit>` is one of us, ms, s, m, h. Parts add up ("1m30s" is 90 seconds).
There is no sign, exponent, nan or inf, and a bare number is refused: in a
file that mixes milliseconds and seconds, a number without its unit is a bug
waiting to happen.
"""

from __future__ import annotations

import math
import re

#: Seconds in one of each unit, in the order they are listed to operators.
UNITS: dict[str, float] = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}

ALLOWED = 'a duration like "200ms" or "2s" (units: us, ms, s, m, h)'

# "ms" must be tried before "m" and "s"; "us" before "s".
_PART = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(us|ms|h|m|s)")
_WHOLE = re.compile(rf"(?:{_PART.pattern})+")


def parse_duration(text: str) -> float:
    """Return the duration `text` stands for, in seconds (>= 0, finite).

    Raises ValueError, with a message saying what is allowed, for anything
    else: negatives, bare numbers, empty strings, unknown units, nan, inf,
    and values too large to represent.
    """
    if not isinstance(text, str):
        raise ValueError(f"expected {ALLOWED}, got {type(text).__name__} {text!r}")
    # Leading and trailing blanks are a harmless slip; blanks inside are not
    # (is "2 s" two seconds or a typo for "2 ms"?).
    stripped = text.strip()
    if not _WHOLE.fullmatch(stripped):
        raise ValueError(f"expected {ALLOWED}, got {quote_text(text)}")
    seconds = sum(float(number) * UNITS[unit] for number, unit in _PART.findall(stripped))
    if not math.isfinite(seconds):
        raise ValueError(f"expected {ALLOWED}, got {quote_text(text)} (too large)")
    return seconds


def format_duration(seconds: float) -> str:
    """Return `seconds` in a short form that `parse_duration` reads back.

    Zero is "0s". Below a millisecond: whole microseconds ("500us"). Below a second:
    milliseconds, with a fraction only if needed ("250ms", "1.5ms"). Below a
    minute: seconds to the millisecond ("2s", "1.5s"). From a minute up:
    hours, minutes and seconds, leaving out zero parts ("1m30s", "2h", "1h5s").
    Negative values get a leading "-" (parse_duration will refuse it; this is
    for display only). Raises ValueError for nan and inf.
    """
    if not math.isfinite(seconds):
        raise ValueError(f"cannot format a non-finite duration: {seconds!r}")
    if seconds < 0:
        return "-" + format_duration(-seconds)
    micros = round(seconds * 1_000_000)
    if micros == 0:
        return "0s"
    if micros < 1_000:
        return f"{micros}us"
    if micros < 1_000_000:
        return _decimal(micros, 1_000) + "ms"
    millis = round(seconds * 1_000)
    if millis < 60_000:
        return _decimal(millis, 1_000) + "s"
    hours, rest = divmod(millis, 3_600_000)
    minutes, millis = divmod(rest, 60_000)
    parts = []
    if hours:
        parts.append(f"{hours}h")
    if minutes:
        parts.append(f"{minutes}m")
    if millis:
        parts.append(_decimal(millis, 1_000) + "s")
    return "".join(parts)


def _decimal(count: int, per_unit: int) -> str:
    """`count` sub-units written as units with only the digits that matter:
    _decimal(1500, 1000) == "1.5", _decimal(2000, 1000) == "2"."""
    whole, frac = divmod(count, per_unit)
    if not frac:
        return str(whole)
    width = len(str(per_unit)) - 1
    return f"{whole}.{frac:0{width}d}".rstrip("0")


def quote_text(text: str, limit: int = 60) -> str:
    """`text` in double quotes for a one-line message: quotes, backslashes
    and anything unprintable (newlines included) escaped, and cut short past
    `limit` characters so one bad value cannot flood the terminal. The
    manifest's error messages use it too."""
    if len(text) > limit:
        return quote_text(text[: limit - 3], limit)[:-1] + '..."'
    return '"' + "".join(c if c.isprintable() and c not in '"\\' else _escape(c) for c in text) + '"'


def _escape(char: str) -> str:
    named = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}
    if char in named:
        return named[char]
    return f"\\u{ord(char):04x}" if ord(char) <= 0xFFFF else f"\\U{ord(char):08x}"
