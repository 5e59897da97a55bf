"""Tokenizer for the PowerShell-style cmdlet language (argument mode only).

Role: turn one command line into a flat list of ``Token``s for ``parser``. It follows
PowerShell's argument-mode rules (about_Parsing, about_Quoting_Rules,
about_Special_Characters) for the subset the admin shell speaks:

* ``-Name`` is a parameter token when ``-`` starts a token and a letter follows;
  ``-Name:value`` marks the parameter with ``colon=True`` (the value follows directly);
* ``'...'`` is verbatim, ``''`` inside it is one ``'``;
* typographic dashes (U+2013-U+2015) and quotes (U+2018-U+201B, U+201C-U+201E) count
  as their ASCII forms, as in PowerShell, so commands copied from documents work;
* ``"..."`` honours backtick escapes (`` `n `t `0 `a `b `f `r `v `" `$ ``` `` ``` ``, any
  other escaped character stands for itself) and ``""`` is one ``"``; ``$`` is literal
  (there are no variables to expand besides ``$true``/``$false``/``$null``);
* ``$true``, ``$false``, ``$null`` (case-insensitive) are variable tokens;
* ``,`` ``|`` ``;`` are separators; ``( )`` enclose a subexpression (a pipeline whose
  output is the value, e.g. ``(ConvertTo-SecureString ...)``); ``@{`` opens a hashtable,
  in which ``=``, ``;`` and ``}`` are also separators; ``#`` at the start of a token
  starts a comment;
* a backtick inside a bare word escapes the next character.

Invariants: every token carries its 1-based column; the tokenizer never raises anything
but ``CmdletError`` and accepts at most ``MAX_LINE_LENGTH`` characters.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from gateway.admin.errors import CmdletError

MAX_LINE_LENGTH = 65536
"""Longest command line accepted (characters)."""

# about_Special_Characters: escape sequences recognised inside double quotes.
# PowerShell's tokenizer (CharTraits) also takes the typographic dashes and quotes that
# word processors and web pages put into copied commands.
DASHES = "-\u2013\u2014\u2015"
SINGLE_QUOTES = "'\u2018\u2019\u201a\u201b"
DOUBLE_QUOTES = '"\u201c\u201d\u201e'

_DQ_ESCAPES = {
    "0": "\0", "a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
}

_UNSUPPORTED = {
    "{": "script blocks '{ }'",
    "}": "script blocks '{ }'",
    "&": "the call operator '&'",
    ">": "redirection '>'",
    "<": "redirection '<'",
}


class Kind(Enum):
    WORD = "word"          # bare word (text already unescaped)
    STRING = "string"      # quoted string (text already unescaped)
    VARIABLE = "variable"  # $true / $false / $null (text is the lower-case name)
    PARAMETER = "parameter"  # -Name or -Name: (text is the name without '-')
    COMMA = ","
    PIPE = "|"
    SEMICOLON = ";"
    HASH_OPEN = "@{"
    HASH_CLOSE = "}"
    PAREN_OPEN = "("
    PAREN_CLOSE = ")"
    EQUALS = "="
    END = "end of line"


@dataclass(frozen=True)
class Token:
    kind: Kind
    text: str
    column: int  # 1-based
    colon: bool = False  # PARAMETER only: written as -Name:value


_VARIABLES = ("true", "false", "null")


def tokenize(line: str) -> list[Token]:
    """Split ``line`` into tokens, ending with one ``Kind.END`` token."""
    if len(line) > MAX_LINE_LENGTH:
        raise CmdletError(f"The command line is longer than {MAX_LINE_LENGTH} characters.")
    tokens: list[Token] = []
    depth = 0  # open hashtables
    i = 0
    n = len(line)
    while i < n:
        ch = line[i]
        col = i + 1
        if ch.isspace():
            i += 1
            continue
        if ch == "#":  # about_Comments: the rest of the line is a comment
            break
        if ch in ",|;()":
            kind = {",": Kind.COMMA, "|": Kind.PIPE, ";": Kind.SEMICOLON,
                    "(": Kind.PAREN_OPEN, ")": Kind.PAREN_CLOSE}[ch]
            tokens.append(Token(kind, ch, col))
            i += 1
            continue
        if ch == "@" and line.startswith("@{", i):
            tokens.append(Token(Kind.HASH_OPEN, "@{", col))
            depth += 1
            i += 2
            continue
        if depth and ch == "}":
            tokens.append(Token(Kind.HASH_CLOSE, "}", col))
            depth -= 1
            i += 1
            continue
        if depth and ch == "=":
            tokens.append(Token(Kind.EQUALS, "=", col))
            i += 1
            continue
        if ch in _UNSUPPORTED:
            raise CmdletError(
                f"Unexpected '{ch}' at column {col}: {_UNSUPPORTED[ch]} are not supported "
                f"by this shell. Quote the value if '{ch}' is part of it."
            )
        if ch in SINGLE_QUOTES:
            text, i = _single_quoted(line, i)
            tokens.append(Token(Kind.STRING, text, col))
            continue
        if ch in DOUBLE_QUOTES:
            text, i = _double_quoted(line, i)
            tokens.append(Token(Kind.STRING, text, col))
            continue
        if ch == "$":
            word, j = _bare(line, i + 1, depth)
            name = word.lower()
            if name not in _VARIABLES:
                shown = word if len(word) <= 40 else word[:40] + "..."
                raise CmdletError(
                    f"Unknown variable '${shown}' at column {col}: only $true, $false and "
                    "$null are available. Quote the value if '$' is part of it."
                )
            tokens.append(Token(Kind.VARIABLE, name, col))
            i = j
            continue
        if ch in DASHES and i + 1 < n and line[i + 1].isalpha() and depth == 0:
            j = i + 1
            while j < n and (line[j].isalnum() or line[j] == "_"):
                j += 1
            name = line[i + 1 : j]
            if j < n and line[j] == ":":
                tokens.append(Token(Kind.PARAMETER, name, col, colon=True))
                i = j + 1
                continue
            if j == n or line[j].isspace() or line[j] in ",|;()":
                tokens.append(Token(Kind.PARAMETER, name, col))
                i = j
                continue
            # e.g. "-foo.bar": not a parameter name, a bare word starting with '-'
        word, i = _bare(line, i, depth)
        tokens.append(Token(Kind.WORD, word, col))
    tokens.append(Token(Kind.END, "", n + 1))
    return tokens


def _single_quoted(line: str, start: int) -> tuple[str, int]:
    """about_Quoting_Rules: verbatim; '' is a literal quote."""
    out: list[str] = []
    i = start + 1
    n = len(line)
    while i < n:
        ch = line[i]
        if ch in SINGLE_QUOTES:
            if i + 1 < n and line[i + 1] in SINGLE_QUOTES:
                out.append("'")
                i += 2
                continue
            return "".join(out), i + 1
        out.append(ch)
        i += 1
    raise CmdletError(
        f"The string starting at column {start + 1} is missing its terminator: '."
    )


def _double_quoted(line: str, start: int) -> tuple[str, int]:
    """about_Quoting_Rules / about_Special_Characters: backtick escapes, "" is a quote."""
    out: list[str] = []
    i = start + 1
    n = len(line)
    while i < n:
        ch = line[i]
        if ch == "`":
            if i + 1 >= n:
                break
            nxt = line[i + 1]
            out.append(_DQ_ESCAPES.get(nxt, nxt))
            i += 2
            continue
        if ch in DOUBLE_QUOTES:
            if i + 1 < n and line[i + 1] in DOUBLE_QUOTES:
                out.append('"')
                i += 2
                continue
            return "".join(out), i + 1
        out.append(ch)
        i += 1
    raise CmdletError(
        f'The string starting at column {start + 1} is missing its terminator: ".'
    )


def _bare(line: str, start: int, depth: int) -> tuple[str, int]:
    """A bare word up to whitespace or a separator; a backtick escapes one character."""
    stops = ",|;(){}&<>" + ("=" if depth else "")
    out: list[str] = []
    i = start
    n = len(line)
    while i < n:
        ch = line[i]
        if ch.isspace() or ch in stops:
            break
        if ch == "`":
            if i + 1 >= n:
                raise CmdletError(f"Missing character after the backtick at column {i + 1}.")
            out.append(line[i + 1])
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out), i
