"""SMTP command-line parsing: bytes in, typed commands out (pure, no I/O).

Role: split a command line into its verb and argument, and the MAIL/RCPT argument into
the path and the ESMTP parameters (RFC 5321 §4.1.1.2-3, §4.1.2; RFC 1870 SIZE,
RFC 6152 8BITMIME, RFC 6531 SMTPUTF8). Address *validation* is the policy's job
(``gateway.connectors.parse_address``); this module only finds the path text.

Invariants: never raises anything but ``CommandSyntaxError`` (whose ``reply`` is the
line to send); limits are explicit (``MAX_PARAMS``, ``MAX_PARAM_LENGTH``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_PARAMS = 16
MAX_PARAM_LENGTH = 500

# RFC 5321 §4.5.3.1.4: 512 octets per command line; RFC 4954 §4: AUTH lines up to 12288
# (initial responses); MAIL/RCPT grow with parameters and UTF-8 addresses (RFC 6531).
COMMAND_LIMITS = {"AUTH": 12288, "MAIL": 2048, "RCPT": 2048}
DEFAULT_COMMAND_LIMIT = 512


class CommandSyntaxError(ValueError):
    """A malformed command; ``reply`` is the SMTP reply line for it."""

    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.reply = reply


@dataclass(frozen=True)
class Command:
    verb: str  # upper-case ASCII, "" when the line is empty
    arg: str  # the rest of the line, stripped ("" when absent)


@dataclass(frozen=True)
class PathArgument:
    path: str  # "<...>" as received (brackets kept); "" never (syntax error instead)
    params: dict[str, str | None] = field(default_factory=dict)  # upper-case keywords


def parse_command(line: bytes, *, utf8: bool) -> Command:
    """``line`` without its CRLF. Arguments decode as UTF-8 when SMTPUTF8 is on, else
    ASCII (a non-ASCII byte is a syntax error, RFC 5321 §2.4)."""
    verb_bytes, _, arg_bytes = line.partition(b" ")
    try:
        verb = verb_bytes.decode("ascii").upper()
    except UnicodeDecodeError:
        raise CommandSyntaxError("500 5.3.3 Unrecognized command") from None
    if not verb.isalnum() and verb:
        raise CommandSyntaxError("500 5.3.3 Unrecognized command")
    try:
        arg = arg_bytes.decode("utf-8" if utf8 else "ascii").strip(" ")
    except UnicodeDecodeError:
        raise CommandSyntaxError("501 5.5.4 Invalid arguments") from None
    if any(ord(c) < 32 or ord(c) == 127 for c in arg):
        raise CommandSyntaxError("501 5.5.4 Invalid arguments")
    return Command(verb, arg)


def _split_path(text: str) -> tuple[str, str]:
    """``<...>`` at the start of ``text`` (quoted strings may hold ``>`` and spaces)."""
    if not text.startswith("<"):
        raise CommandSyntaxError("501 5.5.4 Invalid arguments")
    quoted = False
    escaped = False
    for i, ch in enumerate(text):
        if escaped:
            escaped = False
        elif ch == "\\" and quoted:
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == ">" and not quoted:
            return text[:i + 1], text[i + 1:]
    raise CommandSyntaxError("501 5.5.4 Invalid arguments")


def parse_path_argument(arg: str, keyword: str) -> PathArgument:
    """``FROM:<path> params`` / ``TO:<path> params`` (keyword "FROM" or "TO")."""
    head = keyword + ":"
    if arg[:len(head)].upper() != head:
        raise CommandSyntaxError("501 5.5.4 Invalid arguments")
    rest = arg[len(head):].lstrip(" ")  # a space after the colon is common; tolerate it
    path, tail = _split_path(rest)
    if tail and not tail.startswith(" "):
        raise CommandSyntaxError("501 5.5.4 Invalid arguments")
    params: dict[str, str | None] = {}
    words = tail.split()
    if len(words) > MAX_PARAMS:
        raise CommandSyntaxError("501 5.5.4 Invalid arguments")
    for word in words:
        if len(word) > MAX_PARAM_LENGTH:
            raise CommandSyntaxError("501 5.5.4 Invalid arguments")
        key, eq, value = word.partition("=")
        # RFC 5321 §4.1.2: esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
        if not key or not key[0].isalnum() or not all(c.isalnum() or c == "-" for c in key) \
                or not key.isascii() or (eq and not value):
            raise CommandSyntaxError("501 5.5.4 Invalid arguments")
        params[key.upper()] = value if eq else None
    return PathArgument(path, params)


def is_valid_helo_domain(text: str) -> bool:
    """A plausible EHLO/HELO argument: a domain or an address literal (RFC 5321
    §4.1.1.1), one word, printable. Exchange answers ``501 5.5.4 Invalid domain name``."""
    if not text or len(text) > 255 or " " in text:
        return False
    if text.startswith("["):
        return text.endswith("]") and len(text) > 2
    return all(ch.isalnum() or ch in "-._" or ord(ch) > 127 for ch in text) \
        and not text.startswith(".") and ".." not in text
