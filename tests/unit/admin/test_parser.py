"""Parser: statements, pipelines, parameters, lists and hashtables."""

from __future__ import annotations

import pytest

from gateway.admin.errors import CmdletError
from gateway.admin.parser import (
    MAX_LIST_ITEMS,
    MAX_NESTING,
    HashValue,
    ListValue,
    ParamArg,
    Scalar,
    SubExpression,
    Variable,
    parse,
)


def test_command_with_named_positional_and_switch():
    [[cmd]] = parse("New-AcceptedDomain example -DomainName example.test -MakeDefault")
    assert cmd.name == "New-AcceptedDomain"
    assert cmd.elements == (
        Scalar("example", False, 20),
        ParamArg("DomainName", None, 28),
        Scalar("example.test", False, 40),
        ParamArg("MakeDefault", None, 53),
    )


def test_colon_form_attaches_the_value():
    [[cmd]] = parse("Remove-Mailbox alice -Confirm:$false")
    assert cmd.elements[1] == ParamArg("Confirm", Variable("false", 31), 22)


def test_colon_form_without_value_is_an_error():
    with pytest.raises(CmdletError, match="Missing an argument for parameter 'Name'"):
        parse("New-Mailbox -Name:")


def test_comma_lists_with_and_without_spaces_and_quotes():
    [[cmd]] = parse('Set-Mailbox a -EmailAddresses x@y.test, "z@y.test",\'w@y.test\'')
    value = cmd.elements[2]
    assert isinstance(value, ListValue)
    assert [(i.text, i.quoted) for i in value.items] == [
        ("x@y.test", False), ("z@y.test", True), ("w@y.test", True),
    ]


def test_trailing_comma_is_an_error():
    with pytest.raises(CmdletError, match="Missing expression after ','"):
        parse("Set-Mailbox a -EmailAddresses x@y.test,")


def test_list_size_limit():
    with pytest.raises(CmdletError, match="at most"):
        parse("x " + ",".join(["a"] * (MAX_LIST_ITEMS + 1)))


def test_hashtable_with_list_values():
    [[cmd]] = parse("Set-Mailbox a -EmailAddresses @{Add='b@x.test','c@x.test'; Remove=d@x.test}")
    value = cmd.elements[2]
    assert isinstance(value, HashValue)
    assert [k for k, _ in value.entries] == ["Add", "Remove"]
    add = value.entries[0][1]
    assert isinstance(add, ListValue) and [i.text for i in add.items] == ["b@x.test", "c@x.test"]


@pytest.mark.parametrize(("line", "message"), [
    ("x @{Add='a'", "missing its closing"),
    ("x @{Add 'a'}", "Missing '='"),
    ("x @{Add=}", "Missing the value"),
    ("x @{,}", "Expected a hashtable key"),
])
def test_hashtable_errors(line, message):
    with pytest.raises(CmdletError, match=message):
        parse(line)


def test_pipeline_and_statements():
    statements = parse("Get-Mailbox alice | Set-CASMailbox -ImapEnabled $false; Get-CASMailbox")
    assert [[c.name for c in p] for p in statements] == [
        ["Get-Mailbox", "Set-CASMailbox"], ["Get-CASMailbox"],
    ]


def test_empty_line_and_empty_statements():
    assert parse("") == []
    assert parse("  ;; # only a comment") == []


@pytest.mark.parametrize("line", ["Get-Mailbox |", "Get-Mailbox | | Format-List",
                                  "| Get-Mailbox"])
def test_empty_pipe_elements(line):
    with pytest.raises(CmdletError, match=r"empty pipe element|Expected a cmdlet name"):
        parse(line)


def test_command_must_start_with_a_name():
    with pytest.raises(CmdletError, match="Expected a cmdlet name at column 1"):
        parse("'Get-Mailbox'")


def test_subexpression_value():
    [[cmd]] = parse("New-Mailbox a -Password (ConvertTo-SecureString 'x' -AsPlainText) -B c")
    sub = cmd.elements[2]
    assert isinstance(sub, SubExpression) and sub.column == 25
    [inner] = sub.pipeline
    assert inner.name == "ConvertTo-SecureString" and len(inner.elements) == 2
    assert cmd.elements[3] == ParamArg("B", None, 67)


def test_subexpression_with_pipeline_inside_a_list():
    [[cmd]] = parse("Set-X a,(Get-Mailbox b | Get-CASMailbox)")
    value = cmd.elements[0]
    assert isinstance(value, ListValue)
    assert [c.name for c in value.items[1].pipeline] == ["Get-Mailbox", "Get-CASMailbox"]


@pytest.mark.parametrize(("line", "message"), [
    ("x (Get-Mailbox", r"missing its closing '\)'"),
    ("x ()", "is empty"),
    ("x )", r"Unexpected '\)'"),
    ("x " + "(y " * (MAX_NESTING + 1) + ")" * (MAX_NESTING + 1), "Nesting deeper"),
])
def test_subexpression_errors(line, message):
    with pytest.raises(CmdletError, match=message):
        parse(line)
