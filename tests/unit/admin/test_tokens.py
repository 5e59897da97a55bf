"""Tokenizer: PowerShell argument-mode quoting, escapes, variables and separators."""

from __future__ import annotations

import pytest

from gateway.admin.errors import CmdletError
from gateway.admin.tokens import MAX_LINE_LENGTH, Kind, tokenize


def kinds_texts(line: str) -> list[tuple[Kind, str]]:
    return [(t.kind, t.text) for t in tokenize(line)][:-1]


def test_words_parameters_and_end():
    toks = tokenize("Get-Mailbox -Identity alice")
    assert [(t.kind, t.text, t.column) for t in toks] == [
        (Kind.WORD, "Get-Mailbox", 1),
        (Kind.PARAMETER, "Identity", 13),
        (Kind.WORD, "alice", 23),
        (Kind.END, "", 28),
    ]


def test_colon_parameter_form():
    toks = tokenize("Remove-Mailbox a -Confirm:$false -Name:bob")
    assert toks[2].kind is Kind.PARAMETER and toks[2].colon and toks[2].text == "Confirm"
    assert toks[3].kind is Kind.VARIABLE and toks[3].text == "false"
    assert toks[4].kind is Kind.PARAMETER and toks[4].colon
    assert toks[5].text == "bob"


def test_single_quotes_double_the_quote_and_keep_everything_else():
    assert kinds_texts("x 'it''s `n $a \"q\"'") == [
        (Kind.WORD, "x"), (Kind.STRING, "it's `n $a \"q\""),
    ]


def test_double_quotes_backtick_escapes_and_doubled_quote():
    assert kinds_texts('x "a`tb`n`"c`$d""e `q"') == [
        (Kind.WORD, "x"), (Kind.STRING, 'a\tb\n"c$d"e q'),
    ]


def test_double_quotes_keep_dollar_literal_and_bang():
    assert kinds_texts('x "S3cret!pass$1"')[1] == (Kind.STRING, "S3cret!pass$1")


def test_empty_strings():
    assert kinds_texts("x '' \"\"") == [(Kind.WORD, "x"), (Kind.STRING, ""), (Kind.STRING, "")]


@pytest.mark.parametrize(("line", "column", "quote"), [
    ('New-Mailbox -Password "abc', 23, '"'),
    ("x 'abc''", 3, "'"),
    ('x "ends with backtick`', 3, '"'),
])
def test_unterminated_string_reports_its_column(line, column, quote):
    with pytest.raises(CmdletError) as exc:
        tokenize(line)
    assert f"column {column}" in str(exc.value)
    assert f"terminator: {quote}" in str(exc.value)


def test_variables_are_case_insensitive():
    assert kinds_texts("x $TRUE $False $NuLL") == [
        (Kind.WORD, "x"), (Kind.VARIABLE, "true"), (Kind.VARIABLE, "false"),
        (Kind.VARIABLE, "null"),
    ]


def test_unknown_variable_is_an_error():
    with pytest.raises(CmdletError, match=r"Unknown variable '\$env' at column 3"):
        tokenize("x $env")


def test_parentheses_are_tokens_and_end_words():
    assert kinds_texts("x (y -Z:a)") == [
        (Kind.WORD, "x"), (Kind.PAREN_OPEN, "("), (Kind.WORD, "y"), (Kind.PARAMETER, "Z"),
        (Kind.WORD, "a"), (Kind.PAREN_CLOSE, ")"),
    ]
    assert tokenize("x -Flag)")[1].kind is Kind.PARAMETER


def test_commas_pipes_semicolons():
    assert [t.kind for t in tokenize("a b,c | d; e")][:-1] == [
        Kind.WORD, Kind.WORD, Kind.COMMA, Kind.WORD, Kind.PIPE, Kind.WORD, Kind.SEMICOLON,
        Kind.WORD,
    ]


def test_hashtable_tokens_only_inside_braces():
    assert kinds_texts("x @{Add='a';Remove=b} c=d") == [
        (Kind.WORD, "x"), (Kind.HASH_OPEN, "@{"), (Kind.WORD, "Add"), (Kind.EQUALS, "="),
        (Kind.STRING, "a"), (Kind.SEMICOLON, ";"), (Kind.WORD, "Remove"),
        (Kind.EQUALS, "="), (Kind.WORD, "b"), (Kind.HASH_CLOSE, "}"), (Kind.WORD, "c=d"),
    ]


def test_negative_number_is_a_word_not_a_parameter():
    assert kinds_texts("x -5 -")[1:] == [(Kind.WORD, "-5"), (Kind.WORD, "-")]


def test_backtick_escapes_in_bare_words():
    assert kinds_texts("x a`,b`|c") == [(Kind.WORD, "x"), (Kind.WORD, "a,b|c")]
    with pytest.raises(CmdletError, match="backtick"):
        tokenize("x abc`")


def test_comment_at_token_start_ends_the_line():
    assert kinds_texts("Get-Mailbox # all of them") == [(Kind.WORD, "Get-Mailbox")]
    assert kinds_texts("x a#b") == [(Kind.WORD, "x"), (Kind.WORD, "a#b")]


@pytest.mark.parametrize("char", ["{", "&", ">", "<"])
def test_unsupported_syntax_is_named(char):
    with pytest.raises(CmdletError, match="not supported"):
        tokenize(f"x {char}y")


def test_line_length_limit():
    with pytest.raises(CmdletError, match="longer than"):
        tokenize("x" * (MAX_LINE_LENGTH + 1))


def test_typographic_dashes_and_quotes_from_copied_documents():
    line = "New-Mailbox \u2013Name \u201cAl Ice\u201d \u2014Alias \u2018it\u2019\u2019s\u2019"
    assert kinds_texts(line) == [
        (Kind.WORD, "New-Mailbox"), (Kind.PARAMETER, "Name"), (Kind.STRING, "Al Ice"),
        (Kind.PARAMETER, "Alias"), (Kind.STRING, "it's"),
    ]
