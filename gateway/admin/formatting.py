"""Output views: Exchange-style list and table, and JSON.

* list  - one block per object, ``Name : value`` with names padded to one width
          (Format-List); every property is shown;
* table - one table per run of objects of the same type, with that type's default
          columns (Format-Table); wide columns are cut with ``...`` except the last;
* json  - always a JSON array of objects (ConvertTo-Json of a collection), values as
          JSON types, multi-valued properties as arrays, times as ISO 8601;
* auto  - a single object as a list, several as a table (Get-* default).

Text lines returned by a cmdlet (Get-Help) are printed as they are. In the list and
table views control characters of values are shown escaped (``\\x1b``) so no stored
value can drive the operator's terminal.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from gateway.admin.registry import Output, Record

TABLE_COLUMN_WIDTH = 40
"""Widest a table column gets before its values are cut (the last column never is)."""

FORMATS = ("auto", "list", "table", "json")


def render(outputs: Sequence[Output], fmt: str = "auto") -> str:
    """Render cmdlet output in one of ``FORMATS``; no trailing newline."""
    if fmt == "json":
        return json.dumps([_json_object(o) for o in outputs], indent=2, ensure_ascii=False)
    records = [o for o in outputs if isinstance(o, Record)]
    if fmt == "auto":
        fmt = "list" if len(records) == 1 else "table"
    blocks: list[str] = []
    i = 0
    while i < len(outputs):
        out = outputs[i]
        if isinstance(out, str):
            blocks.append(out)
            i += 1
            continue
        if fmt == "list":
            blocks.append(format_list(out))
            i += 1
            continue
        j = i
        group: list[Record] = []
        while j < len(outputs):
            nxt = outputs[j]
            if not isinstance(nxt, Record) or nxt.type_name != out.type_name:
                break
            group.append(nxt)
            j += 1
        blocks.append(format_table(group))
        i = j
    return "\n\n".join(blocks)


def format_list(record: Record) -> str:
    """Format-List view of one object."""
    if not record.properties:
        return ""
    width = max(len(name) for name in record.properties)
    return "\n".join(
        f"{name.ljust(width)} : {display(value)}" for name, value in record.properties.items()
    )


def format_table(records: Sequence[Record]) -> str:
    """Format-Table view of objects of one type, with the first one's default columns."""
    if not records:
        return ""
    columns = list(records[0].table_columns) or list(records[0].properties)
    cells = [[display(r.properties.get(c)) for c in columns] for r in records]
    widths = []
    for k, column in enumerate(columns):
        width = max([len(column), *(len(row[k]) for row in cells)])
        if k < len(columns) - 1:
            width = min(width, TABLE_COLUMN_WIDTH)
        widths.append(width)
    lines = [
        _row(columns, widths),
        _row(["-" * len(c) for c in columns], widths),
        *(_row(row, widths) for row in cells),
    ]
    return "\n".join(lines)


def _row(values: Sequence[str], widths: Sequence[int]) -> str:
    parts = []
    for k, (value, width) in enumerate(zip(values, widths, strict=True)):
        if len(value) > width:
            value = value[: max(width - 3, 0)] + "..."
        parts.append(value if k == len(values) - 1 else value.ljust(width))
    return " ".join(parts).rstrip()


def display(value: object) -> str:
    """A property value as text: True/False, ``{a, b}`` for lists, '' for null."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, (list, tuple)):
        return "{" + ", ".join(display(v) for v in value) + "}"
    return _escape_controls(str(value))


def _escape_controls(text: str) -> str:
    if all(ch.isprintable() for ch in text):
        return text
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


def _json_object(output: Output) -> object:
    if isinstance(output, str):
        return output
    return {name: _json_value(value) for name, value in output.properties.items()}


def _json_value(value: object) -> object:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    if isinstance(value, bytes):
        return value.hex()
    return str(value)
