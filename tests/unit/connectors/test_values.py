"""Operator value formats: sizes, time spans, Unlimited."""

from __future__ import annotations

import pytest

from gateway.connectors.values import (
    format_size,
    format_timespan,
    format_unlimited,
    parse_size,
    parse_timespan,
    parse_unlimited,
)


@pytest.mark.parametrize(("text", "value"), [
    ("37748736", 37748736), ("36MB", 37748736), ("36 mb", 37748736), ("64KB", 65536),
    ("2GB", 2 * 1024**3), ("1.5MB", 1572864), ("36 MB (37,748,736 bytes)", 37748736),
])
def test_sizes(text, value):
    assert parse_size(text) == value


@pytest.mark.parametrize("text", ["", "lots", "-1", "10 XB", "1" * 20])
def test_bad_sizes(text):
    with pytest.raises(ValueError):
        parse_size(text)


def test_size_display_round_trips():
    for value in (37748736, 65536, 2 * 1024**3, 1000):
        assert parse_size(format_size(value)) == value


@pytest.mark.parametrize(("text", "seconds"), [
    ("00:10:00", 600), ("1.00:00:00", 86400), ("00:00:05", 5), ("300", 300), ("0.5", 0.5),
])
def test_timespans(text, seconds):
    assert parse_timespan(text) == seconds
    if seconds >= 1 and seconds == int(seconds):
        assert parse_timespan(format_timespan(seconds)) == seconds


@pytest.mark.parametrize("text", ["", "10 minutes", "00:60:00", "25:00:00", "1:2"])
def test_bad_timespans(text):
    with pytest.raises(ValueError):
        parse_timespan(text)


def test_unlimited():
    assert parse_unlimited("Unlimited") is None and parse_unlimited("20") == 20
    assert format_unlimited(None) == "Unlimited" and format_unlimited(5) == "5"
    with pytest.raises(ValueError):
        parse_unlimited("-3")
