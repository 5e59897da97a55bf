"""POP3 command parsing and the table of which command is legal in which state.

Role: turn one command line into a typed ``Command`` (RFC 1939 §3: a case-insensitive
keyword of 3-4 characters and arguments separated by spaces; RFC 2449 §4 allows
keywords up to 4 characters and arguments up to 40, which USER/PASS/AUTH exceed in
practice, so only the line length is capped, in ``wire``) and say whether it is
legal now. The state machine (``session``) has one ``do_<keyword>`` per entry.

Invariants: parsing never raises anything but ``CommandError``; a command absent from
``COMMANDS`` is unknown in every state.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

MAX_MESSAGE_NUMBER_DIGITS = 10


class State(enum.Enum):
    AUTHORIZATION = "AUTHORIZATION"  # RFC 1939 §4
    TRANSACTION = "TRANSACTION"      # RFC 1939 §5
    UPDATE = "UPDATE"                # RFC 1939 §6


class CommandError(ValueError):
    """A line that is not a well-formed command; the text is safe for the client."""


@dataclass(frozen=True)
class Command:
    keyword: str            # upper case
    args: tuple[str, ...]   # split on white space
    rest: str               # everything after the keyword and one space (USER, PASS)


@dataclass(frozen=True)
class CommandSpec:
    states: frozenset[State]
    min_args: int
    max_args: int           # -1: any number (the argument is ``rest``)


_AUTH = frozenset({State.AUTHORIZATION})
_TRANS = frozenset({State.TRANSACTION})
_BOTH = _AUTH | _TRANS

COMMANDS: dict[str, CommandSpec] = {
    "CAPA": CommandSpec(_BOTH, 0, 0),         # RFC 2449 §5
    "USER": CommandSpec(_AUTH, 1, -1),        # RFC 1939 §7
    "PASS": CommandSpec(_AUTH, 1, -1),        # RFC 1939 §7: spaces may be in the password
    "AUTH": CommandSpec(_AUTH, 0, 2),         # RFC 5034 §4 (no argument: list, RFC 1734)
    "STLS": CommandSpec(_AUTH, 0, 0),         # RFC 2595 §4
    "QUIT": CommandSpec(_BOTH, 0, 0),         # RFC 1939 §4, §6
    "STAT": CommandSpec(_TRANS, 0, 0),        # RFC 1939 §5
    "LIST": CommandSpec(_TRANS, 0, 1),
    "RETR": CommandSpec(_TRANS, 1, 1),
    "DELE": CommandSpec(_TRANS, 1, 1),
    "NOOP": CommandSpec(_TRANS, 0, 0),
    "RSET": CommandSpec(_TRANS, 0, 0),
    "TOP": CommandSpec(_TRANS, 2, 2),         # RFC 1939 §7
    "UIDL": CommandSpec(_TRANS, 0, 1),        # RFC 1939 §7
}


def parse(line: bytes) -> Command:
    """One command line (without CRLF)."""
    if b"\x00" in line:
        raise CommandError("NUL in command")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise CommandError("command is not UTF-8") from None
    keyword, _sep, rest = text.partition(" ")
    keyword = keyword.strip()
    if not keyword or len(keyword) > 4 or not keyword.isascii() or not keyword.isalpha():
        raise CommandError("unknown command")
    return Command(keyword.upper(), tuple(rest.split()), rest)


def check_arity(command: Command, spec: CommandSpec) -> None:
    n = len(command.args)
    if n < spec.min_args or (spec.max_args >= 0 and n > spec.max_args):
        raise CommandError(f"wrong number of arguments for {command.keyword}")


def message_number(text: str) -> int:
    """A message-number argument (RFC 1939 §3: a positive decimal number)."""
    if not text.isascii() or not text.isdigit() or len(text) > MAX_MESSAGE_NUMBER_DIGITS:
        raise CommandError("invalid message number")
    return int(text)


def line_count(text: str) -> int:
    """TOP's non-negative number of lines."""
    if not text.isascii() or not text.isdigit() or len(text) > MAX_MESSAGE_NUMBER_DIGITS:
        raise CommandError("invalid number of lines")
    return int(text)
