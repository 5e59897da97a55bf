"""Parser: tokens -> statements -> pipelines -> commands with raw arguments.

Grammar (argument mode; ``;`` separates statements, ``|`` pipeline elements)::

    line      := statement (';' statement)*
    statement := command ('|' command)*          (empty statements are skipped)
    command   := WORD element*
    element   := PARAMETER | PARAMETER-with-colon value | value
    value     := primary (',' primary)*          (two or more primaries: a list)
    primary   := WORD | STRING | VARIABLE | hashtable | '(' statement ')'
    hashtable := '@{' (key '=' value (';')*)* '}' ;  key := WORD | STRING

A parenthesised pipeline is a subexpression: it runs before its command and its output
becomes the value (``-Password (ConvertTo-SecureString 'x' -AsPlainText -Force)``).

Whether ``-Name`` takes the following value or is a switch is decided at binding time
from the cmdlet's parameter specs (as PowerShell does), so a non-colon parameter is
emitted with ``value=None`` and its argument, if any, as the next element.

Invariant: values keep their column and whether they were quoted, so the binder can
report positions and tell ``'$true'`` (a string) from ``$true`` (a Boolean).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from gateway.admin.errors import CmdletError
from gateway.admin.tokens import Kind, Token, tokenize

MAX_LIST_ITEMS = 1000
"""Most items accepted in one comma list or hashtable."""

MAX_NESTING = 8
"""Deepest nesting of subexpressions and hashtables."""


@dataclass(frozen=True)
class Scalar:
    text: str
    quoted: bool
    column: int
    secret: bool = False  # the value of a SecureString: only password parameters take it


@dataclass(frozen=True)
class Variable:
    name: str  # "true", "false" or "null"
    column: int


@dataclass(frozen=True)
class ListValue:
    items: tuple[Value, ...]
    column: int


@dataclass(frozen=True)
class HashValue:
    entries: tuple[tuple[str, Value], ...]
    column: int


@dataclass(frozen=True)
class SubExpression:
    pipeline: tuple[Command, ...]
    column: int


Value = Scalar | Variable | ListValue | HashValue | SubExpression


@dataclass(frozen=True)
class ParamArg:
    name: str
    value: Value | None  # set only for the -Name:value form
    column: int


Element = ParamArg | Value


@dataclass(frozen=True)
class Command:
    name: str
    column: int
    elements: tuple[Element, ...]


Pipeline = tuple[Command, ...]

_VALUE_START = (Kind.WORD, Kind.STRING, Kind.VARIABLE, Kind.HASH_OPEN, Kind.PAREN_OPEN)
_COMMAND_END = (Kind.PIPE, Kind.SEMICOLON, Kind.END, Kind.PAREN_CLOSE)


def parse(line: str) -> list[Pipeline]:
    """Parse one command line into its statements (each a pipeline of commands)."""
    return _Parser(tokenize(line)).parse_line()


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.pos = 0
        self.depth = 0

    def peek(self) -> Token:
        return self.tokens[self.pos]

    def take(self) -> Token:
        tok = self.tokens[self.pos]
        if tok.kind is not Kind.END:
            self.pos += 1
        return tok

    def parse_line(self) -> list[Pipeline]:
        statements: list[Pipeline] = []
        while True:
            while self.peek().kind is Kind.SEMICOLON:
                self.take()
            if self.peek().kind is Kind.END:
                return statements
            statements.append(self.parse_pipeline())
            tok = self.peek()
            if tok.kind not in (Kind.SEMICOLON, Kind.END):
                raise CmdletError(f"Unexpected '{tok.text}' at column {tok.column}.")

    def parse_pipeline(self) -> Pipeline:
        commands = [self.parse_command()]
        while self.peek().kind is Kind.PIPE:
            pipe = self.take()
            if self.peek().kind in _COMMAND_END:
                raise CmdletError(
                    f"An empty pipe element is not allowed (after '|' at column {pipe.column})."
                )
            commands.append(self.parse_command())
        return tuple(commands)

    def parse_command(self) -> Command:
        tok = self.take()
        if tok.kind is not Kind.WORD:
            what = "'|'" if tok.kind is Kind.PIPE else (repr(tok.text) or tok.kind.value)
            raise CmdletError(f"Expected a cmdlet name at column {tok.column}, found {what}.")
        elements: list[Element] = []
        while True:
            nxt = self.peek()
            if nxt.kind in _COMMAND_END:
                break
            if nxt.kind is Kind.PARAMETER:
                self.take()
                value: Value | None = None
                if nxt.colon:
                    if self.peek().kind not in _VALUE_START:
                        raise CmdletError(
                            f"Missing an argument for parameter '{nxt.text}' "
                            f"(column {nxt.column})."
                        )
                    value = self.parse_value()
                elements.append(ParamArg(nxt.text, value, nxt.column))
                continue
            if nxt.kind in _VALUE_START:
                elements.append(self.parse_value())
                continue
            raise CmdletError(f"Unexpected '{nxt.text}' at column {nxt.column}.")
        return Command(tok.text, tok.column, tuple(elements))

    def parse_value(self) -> Value:
        first = self.parse_primary()
        if self.peek().kind is not Kind.COMMA:
            return first
        items = [first]
        while self.peek().kind is Kind.COMMA:
            comma = self.take()
            if self.peek().kind not in _VALUE_START:
                raise CmdletError(f"Missing expression after ',' at column {comma.column}.")
            items.append(self.parse_primary())
            if len(items) > MAX_LIST_ITEMS:
                raise CmdletError(f"A list may hold at most {MAX_LIST_ITEMS} items.")
        return ListValue(tuple(items), _column(first))

    def parse_primary(self) -> Value:
        tok = self.take()
        if tok.kind is Kind.WORD:
            return Scalar(tok.text, False, tok.column)
        if tok.kind is Kind.STRING:
            return Scalar(tok.text, True, tok.column)
        if tok.kind is Kind.VARIABLE:
            return Variable(tok.text, tok.column)
        if tok.kind is Kind.HASH_OPEN:
            with self.nested(tok):
                return self.parse_hashtable(tok)
        if tok.kind is Kind.PAREN_OPEN:
            with self.nested(tok):
                return self.parse_subexpression(tok)
        raise CmdletError(f"Expected a value at column {tok.column}.")  # pragma: no cover

    @contextlib.contextmanager
    def nested(self, opening: Token) -> Iterator[None]:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise CmdletError(
                f"Nesting deeper than {MAX_NESTING} levels at column {opening.column}."
            )
        try:
            yield
        finally:
            self.depth -= 1

    def parse_subexpression(self, opening: Token) -> SubExpression:
        if self.peek().kind is Kind.PAREN_CLOSE:
            raise CmdletError(f"The subexpression at column {opening.column} is empty.")
        pipeline = self.parse_pipeline()
        closing = self.take()
        if closing.kind is not Kind.PAREN_CLOSE:
            raise CmdletError(
                f"The subexpression starting at column {opening.column} is missing its "
                "closing ')'."
            )
        return SubExpression(pipeline, opening.column)

    def parse_hashtable(self, opening: Token) -> HashValue:
        entries: list[tuple[str, Value]] = []
        while True:
            tok = self.take()
            if tok.kind is Kind.SEMICOLON:
                continue
            if tok.kind is Kind.HASH_CLOSE:
                return HashValue(tuple(entries), opening.column)
            if tok.kind is Kind.END:
                raise CmdletError(
                    f"The hashtable starting at column {opening.column} is missing its "
                    "closing '}'."
                )
            if tok.kind not in (Kind.WORD, Kind.STRING):
                raise CmdletError(f"Expected a hashtable key at column {tok.column}.")
            eq = self.take()
            if eq.kind is not Kind.EQUALS:
                raise CmdletError(
                    f"Missing '=' after the hashtable key '{tok.text}' (column {eq.column})."
                )
            if self.peek().kind not in _VALUE_START:
                raise CmdletError(
                    f"Missing the value of hashtable key '{tok.text}' (column {eq.column})."
                )
            entries.append((tok.text, self.parse_value()))
            if len(entries) > MAX_LIST_ITEMS:
                raise CmdletError(f"A hashtable may hold at most {MAX_LIST_ITEMS} entries.")


def _column(value: Value) -> int:
    return value.column
