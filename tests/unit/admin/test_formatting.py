"""Views: list, table, JSON and the automatic choice."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from gateway.admin.formatting import TABLE_COLUMN_WIDTH, display, format_table, render
from gateway.admin.registry import Record


def rec(name: str, domain: str, default: bool = False) -> Record:
    return Record("AcceptedDomain", name, {
        "Name": name, "DomainName": domain, "DomainType": "Authoritative", "Default": default,
        "Extra": ["a", "b"],
    }, ("Name", "DomainName", "DomainType", "Default"))


def test_list_view_pads_names_and_shows_every_property():
    assert render([rec("example", "example.test", True)], "list") == (
        "Name       : example\n"
        "DomainName : example.test\n"
        "DomainType : Authoritative\n"
        "Default    : True\n"
        "Extra      : {a, b}"
    )


def test_table_view_uses_default_columns():
    text = render([rec("example", "example.test", True), rec("b", "b.test")], "table")
    assert text.splitlines() == [
        "Name    DomainName   DomainType    Default",
        "----    ----------   ----------    -------",
        "example example.test Authoritative True",
        "b       b.test       Authoritative False",
    ]


def test_auto_is_list_for_one_object_and_table_for_several():
    one = render([rec("a", "a.test")])
    assert one.startswith("Name       : a")
    several = render([rec("a", "a.test"), rec("b", "b.test")])
    assert several.startswith("Name DomainName")


def test_json_is_always_an_array_with_json_types():
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    r = Record("X", "x", {"Flag": True, "Count": 3, "None": None, "List": ("a",), "When": when,
                          "Raw": b"\x01"})
    assert json.loads(render([r], "json")) == [
        {"Flag": True, "Count": 3, "None": None, "List": ["a"],
         "When": "2026-01-02T03:04:05+00:00", "Raw": "01"},
    ]
    assert json.loads(render([], "json")) == []


def test_text_output_passes_through():
    assert render(["WARNING: nothing changed"], "table") == "WARNING: nothing changed"
    assert render([], "auto") == ""


def test_wide_columns_are_cut_except_the_last():
    long = "x" * (TABLE_COLUMN_WIDTH + 10)
    r = Record("T", "t", {"A": long, "B": long}, ("A", "B"))
    _header, _, row = format_table([r]).splitlines()
    first, last = row.split(" ", 1)
    assert len(first) == TABLE_COLUMN_WIDTH and first.endswith("...")
    assert last == long


def test_control_characters_are_escaped():
    assert display("evil\x1b[2Jname") == "evil\\x1b[2Jname"
    assert display(None) == "" and display(False) == "False"


def test_mixed_types_make_one_table_each():
    other = Record("Other", "o", {"Name": "o"}, ("Name",))
    text = render([rec("a", "a.test"), rec("b", "b.test"), other], "table")
    blocks = text.split("\n\n")
    assert len(blocks) == 2 and blocks[1].startswith("Name\n----\no")
