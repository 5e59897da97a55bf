"""Operator-facing value formats of connector properties (Exchange cmdlet syntax).

* ByteQuantifiedSize: ``37748736``, ``36MB``, ``64 KB``, ``2GB``, or Exchange's display
  form ``36 MB (37,748,736 bytes)`` (the byte count wins); units are powers of 1024;
* TimeSpan: ``hh:mm:ss``, ``d.hh:mm:ss``, or a number of seconds;
* Unlimited: ``unlimited`` (any case) for limits that allow it.

Every parser raises ValueError with a message fit for the operator.
"""

from __future__ import annotations

import re

_UNITS = {"": 1, "B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}
_SIZE = re.compile(r"^\s*(\d{1,13}(?:\.\d{1,3})?)\s*(B|KB|MB|GB|TB)?\s*$", re.IGNORECASE)
_SIZE_DISPLAY = re.compile(r"\(([\d,]{1,20}) bytes\)\s*$")
_TIMESPAN = re.compile(r"^\s*(?:(\d{1,4})\.)?(\d{1,2}):(\d{1,2}):(\d{1,2})(?:\.\d+)?\s*$")


def parse_size(text: str) -> int:
    shown = _SIZE_DISPLAY.search(text)
    if shown:
        return int(shown.group(1).replace(",", ""))
    m = _SIZE.match(text)
    if not m:
        raise ValueError(f"{text[:40]!r} is not a size such as 36MB, 64KB or 37748736")
    return int(float(m.group(1)) * _UNITS[(m.group(2) or "").upper()])


def format_size(value: int) -> str:
    for unit in ("GB", "MB", "KB"):
        if value >= _UNITS[unit] and value % _UNITS[unit] == 0:
            return f"{value // _UNITS[unit]} {unit} ({value:,} bytes)"
    return f"{value:,} B ({value:,} bytes)"


def parse_timespan(text: str) -> float:
    raw = text.strip()
    if re.fullmatch(r"\d{1,9}(\.\d{1,3})?", raw):
        return float(raw)
    m = _TIMESPAN.match(raw)
    if not m:
        raise ValueError(f"{text[:40]!r} is not a time span such as 00:10:00 or 1.00:00:00")
    days, hours, minutes, seconds = (int(g) if g else 0 for g in m.groups())
    if hours > 23 or minutes > 59 or seconds > 59:
        raise ValueError(f"{text[:40]!r} is not a valid time span")
    return float(((days * 24 + hours) * 60 + minutes) * 60 + seconds)


def format_timespan(seconds: float) -> str:
    total = int(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days}.{text}" if days else text


def parse_unlimited(text: str) -> int | None:
    raw = text.strip()
    if raw.lower() == "unlimited":
        return None
    if not raw.isdigit() or len(raw) > 9:
        raise ValueError(f"{text[:40]!r} is not a number or Unlimited")
    return int(raw)


def format_unlimited(value: int | None) -> str:
    return "Unlimited" if value is None else str(value)
