"""Shared session state and response helpers for the command-group mixins.

Role: ``SessionState`` declares what every command group may use (the connection, the
organisation's policy snapshot, the authenticated principal, the selected mailbox,
enabled extensions) and the small helpers that write untagged responses. The command
groups (``commands_any``, ``mailboxes``, ``messages``, ``fetch``, ``search``) inherit
from it; ``session.Session`` combines them with the dispatcher.

Handlers return the text of the tagged OK (``"[READ-WRITE] SELECT completed"``) or
raise :class:`No` / :class:`Bad`; the dispatcher writes the tagged line.
"""

from __future__ import annotations

import enum
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field

from auth.mechanisms.external import NAME as EXTERNAL
from auth.mechanisms.external import offer_external
from auth.principal import Principal
from auth.service import AuthService
from gateway.listeners.stream import ConnectionInfo
from gateway.protocol_settings import (
    ConnectionLease,
    ProtocolSettings,
    UserConnectionCounter,
    advertised_mechanisms,
    login_disabled,
    offer_starttls,
)
from gateway.store import Store
from gateway.store.models import Folder
from protocols.imap.connection import Connection
from protocols.imap.selected import SelectedMailbox
from protocols.imap.snapshots import FolderSnapshots

#: AUTHENTICATE mechanisms in advertising order; EXTERNAL is added on connections with
#: a verified client certificate (auth.mechanisms.external), each filtered by the login
#: type (gateway.protocol_settings.advertised_mechanisms).
SASL_MECHANISMS = ("PLAIN", "LOGIN", "NTLM")


class State(enum.Enum):
    NOT_AUTHENTICATED = "not authenticated"
    AUTHENTICATED = "authenticated"
    SELECTED = "selected"
    LOGOUT = "logout"


class No(Exception):
    """A tagged NO; ``code`` is the response code without brackets."""

    def __init__(self, text: str, code: str | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.code = code


class Bad(Exception):
    """A tagged BAD."""


class Bye(Exception):
    """Close the connection after ``* BYE text``."""


@dataclass
class ImapContext:
    """What the service gives every session."""

    store: Store
    auth: AuthService
    server_name: str
    tls_context: ssl.SSLContext | None
    policy: Callable[[], ProtocolSettings] = lambda: ProtocolSettings("imap")
    users: UserConnectionCounter = field(default_factory=UserConnectionCounter)
    max_message_size: int = 50 * 1024 * 1024
    snapshots: FolderSnapshots = field(default_factory=FolderSnapshots)
    # NTLM channel binding of our certificate (auth.ntlm.verify, RFC 5929 §4.1), used on
    # TLS connections only; None: NTLM runs without it.
    channel_binding: bytes | None = None


class SessionState:
    """Attributes and helpers shared by the command groups (see the module docstring)."""

    conn: Connection
    info: ConnectionInfo
    ctx: ImapContext
    lease: ConnectionLease | None
    state: State
    principal: Principal | None
    selected: SelectedMailbox | None
    inbox: Folder | None  # cached: fixed id and UIDVALIDITY (see MailboxCommands.find)
    enabled: set[str]
    condstore: bool

    @property
    def policy(self) -> ProtocolSettings:
        """The organisation's current IMAP settings (re-read on every use, so a change
        applies to open sessions at their next command)."""
        return self.ctx.policy()

    @property
    def store(self) -> Store:
        return self.ctx.store

    @property
    def mailbox_id(self) -> int:
        assert self.principal is not None and self.principal.mailbox_id is not None
        return self.principal.mailbox_id

    @property
    def sel(self) -> SelectedMailbox:
        if self.selected is None:
            raise Bad("No mailbox selected")
        return self.selected

    @property
    def qresync(self) -> bool:
        return "QRESYNC" in self.enabled

    @property
    def rev2(self) -> bool:
        return "IMAP4REV2" in self.enabled

    def untagged(self, text: str | bytes) -> None:
        data = text.encode("utf-8") if isinstance(text, str) else text
        self.conn.write(b"* " + data + b"\r\n")

    def sasl_mechanisms(self) -> tuple[str, ...]:
        """AUTHENTICATE mechanisms offered and accepted now: the login type's answer
        (gateway.protocol_settings) over PLAIN, LOGIN, NTLM and, with a verified client
        certificate, EXTERNAL (RFC 4422 appendix A)."""
        available = SASL_MECHANISMS + (
            (EXTERNAL,) if offer_external(self.info.client_certificate) else ())
        return advertised_mechanisms(self.policy, tls_active=self.info.tls,
                                     available=available)

    def capabilities(self) -> list[str]:
        """CAPABILITY for the current state (RFC 9051 §7.2.2): what is offered before
        login depends on TLS and the login type."""
        caps = ["IMAP4rev1", "IMAP4rev2", "LITERAL+", "SASL-IR", "ID", "ENABLE", "IDLE",
                "NAMESPACE", "UNSELECT", "CHILDREN", "SPECIAL-USE", "LIST-EXTENDED",
                "LIST-STATUS", "UIDPLUS", "MOVE", "CONDSTORE", "QRESYNC", "ESEARCH",
                "SEARCHRES", "BINARY", "MULTIAPPEND", "STATUS=SIZE",
                f"APPENDLIMIT={self.ctx.max_message_size}"]
        if self.state is State.NOT_AUTHENTICATED:
            tls = self.info.tls
            if offer_starttls(tls_active=tls, tls_available=self.ctx.tls_context is not None):
                caps.append("STARTTLS")
            caps += [f"AUTH={m}" for m in self.sasl_mechanisms()]
            if login_disabled(self.policy, tls_active=tls):
                caps.append("LOGINDISABLED")  # RFC 3501 §6.2.3
        return caps
