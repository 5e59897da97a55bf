"""Every limit the IMAP front end enforces, in one place (security.md A5).

A client that exceeds a limit gets a clear tagged BAD/NO (or a BYE when the stream can
no longer be trusted, e.g. an oversized non-synchronising literal), never a traceback.
"""

from __future__ import annotations

#: Longest command line (without literals), including CRLF. RFC 7162 §4 asks clients
#: to keep lines under 8192 octets; we accept eight times that (Dovecot: 64 KiB).
MAX_LINE = 65536
#: Largest literal in any command but APPEND (strings, search keys, names).
MAX_STRING_LITERAL = 65536
#: Most octets of literals in one non-APPEND command.
MAX_COMMAND_LITERALS = 262144
#: Most octets of message literals in one APPEND/MULTIAPPEND command.
MAX_APPEND_TOTAL = 128 * 1024 * 1024
#: Most messages in one MULTIAPPEND (RFC 3502).
MAX_APPEND_MESSAGES = 1000
#: Deepest nesting of parenthesised lists (search keys, fetch attributes).
MAX_DEPTH = 32
#: Most arguments / list items / search keys in one command.
MAX_ITEMS = 10000
#: Longest mailbox name (octets of the Unicode name as UTF-8).
MAX_MAILBOX_NAME = 1024
#: Most ranges in one sequence set.
MAX_SEQUENCE_RANGES = 10000
#: Idle timeouts (1 minute before login, 30 after) are organisation settings:
#: gateway.protocol_settings (Set-ImapSettings -PreAuthenticatedConnectionTimeout ...).
#: Most messages whose bodies are fetched per store round trip.
FETCH_BATCH = 200
#: Largest ID (RFC 2971) parameter list we read (fields).
MAX_ID_FIELDS = 30
#: Commands rejected in a row before the connection is closed.
MAX_BAD_COMMANDS = 20
#: A client that accepts no response octets for this long is disconnected.
WRITE_TIMEOUT = 300.0
