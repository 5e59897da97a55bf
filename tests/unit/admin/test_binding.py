"""Binding: prefixes, positions, switches, types, mandatory parameters, secrets."""

from __future__ import annotations

import pytest

from gateway.admin.binding import bind, resolve_param
from gateway.admin.errors import CmdletError
from gateway.admin.parser import parse
from gateway.admin.registry import CmdletSpec, ListEdit, Output, ParamSpec


async def _noop(inv: object) -> list[Output]:
    return []


SPEC = CmdletSpec(
    name="Set-Thing",
    synopsis="test",
    handler=_noop,
    params=(
        ParamSpec("Identity", mandatory=True, position=0, pipeline=True),
        ParamSpec("Name", position=1),
        ParamSpec("DisplayName"),
        ParamSpec("Enabled", "bool"),
        ParamSpec("EnabledProtocols", "list", edit=True),
        ParamSpec("Port", "int", minimum=1, maximum=65535),
        ParamSpec("Size", "int"),
        ParamSpec("Kind", "enum", choices=("Authoritative", "InternalRelay", "ExternalRelay")),
        ParamSpec("Force", "switch"),
        ParamSpec("Secret", secret=True, nullable=True, max_length=10),
        ParamSpec("Tags", "list", aliases=("Labels",)),
    ),
)


def bound(line: str, piped: str | None = None) -> dict[str, object]:
    [[cmd]] = parse("Set-Thing " + line)
    return bind(SPEC, cmd, piped)


def test_named_and_positional():
    assert bound("one two -DisplayName 'Three 3'") == {
        "Identity": "one", "Name": "two", "DisplayName": "Three 3",
    }


def test_named_parameter_frees_its_position():
    assert bound("-Identity one two") == {"Identity": "one", "Name": "two"}


def test_case_insensitive_names_and_unique_prefixes():
    assert bound("x -displayname a -PO 25 -f") == {
        "Identity": "x", "DisplayName": "a", "Port": 25, "Force": True,
    }


def test_exact_match_wins_over_prefix():
    # "Enabled" is a prefix of "EnabledProtocols" but an exact name.
    assert bound("x -Enabled $true") == {"Identity": "x", "Enabled": True}


def test_ambiguous_prefix_lists_candidates():
    with pytest.raises(CmdletError) as exc:
        bound("x -Enab $true")
    assert "ambiguous" in str(exc.value)
    assert "-Enabled -EnabledProtocols" in str(exc.value)


def test_unknown_parameter_names_the_nearest():
    with pytest.raises(CmdletError, match=r"'DisplayNme'\. Did you mean -DisplayName\?"):
        bound("x -DisplayNme a")


def test_alias_binds_to_canonical_name():
    assert bound("x -Labels a,b")["Tags"] == ["a", "b"]


def test_parameter_given_twice():
    with pytest.raises(CmdletError, match="specified more than once"):
        bound("x -Name a -name b")


def test_missing_argument():
    with pytest.raises(CmdletError, match="missing an argument for parameter 'DisplayName'"):
        bound("x -DisplayName -Force")
    with pytest.raises(CmdletError, match="missing an argument for parameter 'Port'"):
        bound("x -Port")


def test_too_many_positional_values():
    with pytest.raises(CmdletError, match=r"positional parameter cannot be found.*'three'"):
        bound("one two three")


def test_missing_mandatory():
    [[cmd]] = parse("Set-Thing -Name a")
    with pytest.raises(CmdletError, match="missing mandatory parameter\\(s\\): -Identity"):
        bind(SPEC, cmd)


@pytest.mark.parametrize(("text", "expected"), [
    ("$true", True), ("$false", False), ("1", True), ("0", False), ("true", True),
    ("FALSE", False), ("'$true'", True),
])
def test_bool_values(text, expected):
    assert bound(f"x -Enabled {text}")["Enabled"] is expected
    assert bound(f"x -Enabled:{text}")["Enabled"] is expected


@pytest.mark.parametrize("text", ["yes", "'x'", "a,b", "$null"])
def test_bool_conversion_errors(text):
    with pytest.raises(CmdletError, match=r"Boolean|null"):
        bound(f"x -Enabled {text}")


def test_switch_forms():
    assert bound("x -Force")["Force"] is True
    assert bound("x -Force:$false")["Force"] is False
    # A switch never takes the next token: it is bound positionally instead.
    assert bound("x -Force two") == {"Identity": "x", "Force": True, "Name": "two"}
    with pytest.raises(CmdletError, match="Boolean"):
        bound("x -Force:maybe")


def test_int_values_ranges_and_multipliers():
    assert bound("x -Port 587")["Port"] == 587
    assert bound("x -Size 10MB")["Size"] == 10 * 1024 * 1024
    assert bound("x -Size -3")["Size"] == -3
    with pytest.raises(CmdletError, match="cannot convert 'abc' to type Int32"):
        bound("x -Port abc")
    with pytest.raises(CmdletError, match="outside the range 1 to 65535"):
        bound("x -Port 70000")


def test_enum_is_case_insensitive_and_canonicalised():
    assert bound("x -Kind internalrelay")["Kind"] == "InternalRelay"
    with pytest.raises(CmdletError) as exc:
        bound("x -Kind InternalRelai")
    assert "Authoritative, InternalRelay, ExternalRelay" in str(exc.value)
    assert "Did you mean 'InternalRelay'?" in str(exc.value)


def test_lists_and_single_values():
    assert bound("x -Tags a")["Tags"] == ["a"]
    assert bound("x -Tags a, 'b c',\"d\"")["Tags"] == ["a", "b c", "d"]


def test_list_edit_hashtable():
    assert bound("x -EnabledProtocols @{Add='imap','pop'; remove=smtp}")[
        "EnabledProtocols"] == ListEdit(("imap", "pop"), ("smtp",))
    with pytest.raises(CmdletError, match="use Add and Remove"):
        bound("x -EnabledProtocols @{Replace='x'}")
    with pytest.raises(CmdletError, match="does not take a hashtable"):
        bound("x -Tags @{Add='x'}")


def test_scalar_parameter_refuses_a_list():
    with pytest.raises(CmdletError, match="single String value, not a list"):
        bound("x -DisplayName a,b")


def test_null_only_where_allowed():
    assert bound("x -Secret $null")["Secret"] is None
    with pytest.raises(CmdletError, match="because it is null"):
        bound("x -DisplayName $null")


def test_variables_as_strings():
    assert bound("x -DisplayName $true")["DisplayName"] == "True"


def test_secret_values_never_appear_in_errors():
    with pytest.raises(CmdletError) as exc:
        bound("x -Secret TopSecretValue123")
    assert "TopSecretValue123" not in str(exc.value)
    assert "longer than 10" in str(exc.value)
    with pytest.raises(CmdletError) as exc:
        bound("x -Secret Hunter2Hunter2,Hunter3")
    assert "Hunter" not in str(exc.value)


def test_pipeline_identity():
    assert bound("-Name n", piped="alice") == {"Name": "n", "Identity": "alice"}
    with pytest.raises(CmdletError, match="both on the command line and by the pipeline"):
        bound("alice", piped="bob")


def test_resolve_param_without_suggestion_points_to_help():
    with pytest.raises(CmdletError, match="Get-Help Set-Thing"):
        resolve_param(SPEC, "Zzzzzzzz")
