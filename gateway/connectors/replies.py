"""SMTP replies and decisions of the connector policy (exchange-semantics.md §4.2,
Exchange 2016/2019 texts).

Role: the value types every policy function returns, and every reply text in one
place so the session and ``Test-SmtpRelay`` print exactly the same lines.
Invariant: ``str(reply)`` is a complete reply line without CRLF.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from gateway.connectors.address import SmtpAddress
from gateway.connectors.rights import RightCheck


@dataclass(frozen=True)
class Reply:
    code: int
    enhanced: str | None
    text: str

    @property
    def is_positive(self) -> bool:
        return self.code < 400

    def __str__(self) -> str:
        if self.enhanced:
            return f"{self.code} {self.enhanced} {self.text}"
        return f"{self.code} {self.text}"


@dataclass(frozen=True)
class Decision:
    """A verdict: the reply to send, one line of reason, and the rights consulted."""

    allowed: bool
    reply: Reply
    reason: str
    checks: tuple[RightCheck, ...] = ()


@dataclass(frozen=True)
class RecipientDecision(Decision):
    """A RCPT verdict with the route the recipient takes when accepted."""

    route: Literal["local", "relay", "none"] = "none"
    mailbox_id: int | None = None
    address: SmtpAddress | None = None


# --- §4.2 reply texts -----------------------------------------------------------------
SERVICE_NOT_AVAILABLE = Reply(421, "4.3.2", "Service not available")
TOO_MANY_CONNECTIONS = Reply(421, "4.3.2", "The maximum number of concurrent connections "
                             "has exceeded a limit, closing transmission channel")
STARTTLS_READY = Reply(220, "2.0.0", "SMTP server ready")
STARTTLS_TWICE = Reply(503, "5.5.2", "Only one STARTTLS command can be issued per session")
UNRECOGNIZED_COMMAND = Reply(500, "5.3.3", "Unrecognized command")
AUTH_UNRECOGNIZED = Reply(504, "5.7.4", "Unrecognized authentication type")
AUTH_ALREADY = Reply(503, "5.5.2", "Already authenticated")
AUTH_OK = Reply(235, "2.7.0", "Authentication successful")
AUTH_FAILED = Reply(535, "5.7.3", "Authentication unsuccessful")
TOO_MANY_ERRORS = Reply(421, "4.7.0", "Too many errors on this connection, closing "
                        "transmission channel")
SENDER_OK = Reply(250, "2.1.0", "Sender OK")
STARTTLS_REQUIRED = Reply(451, "5.7.3", "STARTTLS is required to send mail")
NOT_AUTHENTICATED = Reply(530, "5.7.57", "SMTP; Client was not authenticated to send "
                          "anonymous mail during MAIL FROM")
SENDER_INVALID = Reply(501, "5.1.7", "Invalid address")
SEND_AS_DENIED = Reply(550, "5.7.60", "SMTP; Client does not have permissions to send as "
                       "this sender")
SIZE_EXCEEDED = Reply(552, "5.3.4", "Message size exceeds fixed maximum message size")
RECIPIENT_OK = Reply(250, "2.1.5", "Recipient OK")
RECIPIENT_INVALID = Reply(501, "5.1.3", "Invalid address")
TOO_MANY_RECIPIENTS = Reply(452, "4.5.3", "Too many recipients")
RELAY_DENIED = Reply(550, "5.7.54", "SMTP; Unable to relay recipient in non-accepted domain")
RECIPIENT_NOT_FOUND = Reply(550, "5.1.10", "RESOLVER.ADR.RecipientNotFound; Recipient not "
                            "found by SMTP address lookup")
HOP_COUNT_EXCEEDED = Reply(554, "5.4.6", "Hop count exceeded - possible mail loop")
DATA_OK = Reply(250, "2.6.0", "Queued mail for delivery")
TEMPORARY_ERROR = Reply(451, "4.7.0", "Temporary server error. Please try again later")
