"""parse_duration and format_duration: what is accepted, what is refused,
and that what we print reads back."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paxosctl.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("200ms", 0.2),
        ("2s", 2.0),
        ("1.5s", 1.5),
        ("1m", 60.0),
        ("500us", 0.0005),
        ("2h", 7200.0),
        ("1m30s", 90.0),
        ("1h0m5s", 3605.0),
        (".5s", 0.5),
        ("0s", 0.0),
        (" 2s ", 2.0),
    ],
    ids=lambda v: repr(v) if isinstance(v, str) else None,
)
def test_parse_accepts(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text",
    ["2 secs", "-1s", "2", "", "   ", "nan", "inf", "infs", "1d", "1e3s", "2S", "s", "1.5.5s",
     "+2s", "1_000ms", "٣s", "2s ms", "9" * 400 + "h"],
    ids=["words", "negative", "bare-number", "empty", "blank", "nan", "inf", "infs", "unknown-unit",
         "exponent", "uppercase-unit", "unit-only", "two-dots", "plus-sign", "underscore",
         "non-ascii-digit", "space-between-parts", "too-large"],
)
def test_parse_rejects_with_allowed_forms(text):
    with pytest.raises(ValueError) as caught:
        parse_duration(text)
    message = str(caught.value)
    assert 'expected a duration like "200ms" or "2s" (units: us, ms, s, m, h)' in message
    assert "\n" not in message


def test_parse_rejection_quotes_the_input():
    with pytest.raises(ValueError) as caught:
        parse_duration("2 secs")
    assert str(caught.value) == 'expected a duration like "200ms" or "2s" (units: us, ms, s, m, h), got "2 secs"'


@pytest.mark.parametrize("value", [200, 0.2, None, b"2s"], ids=["int", "float", "none", "bytes"])
def test_parse_rejects_non_strings(value):
    with pytest.raises(ValueError):
        parse_duration(value)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.0005, "500us"),
        (0.25, "250ms"),
        (0.0015, "1.5ms"),
        (2, "2s"),
        (1.5, "1.5s"),
        (90, "1m30s"),
        (7200, "2h"),
        (3605, "1h5s"),
        (60.5, "1m0.5s"),
        (-2, "-2s"),
    ],
)
def test_format(seconds, text):
    assert format_duration(seconds) == text


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_format_rejects_non_finite(value):
    with pytest.raises(ValueError):
        format_duration(value)


@settings(derandomize=True)
@given(st.integers(min_value=0, max_value=10**11))
def test_format_reads_back(micros):
    seconds = micros / 1_000_000
    # Below a second format_duration keeps microseconds; above, milliseconds.
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds, abs=0.0005 + 1e-9, rel=1e-12)
