"""Delivery status notifications: NDRs and delay DSNs (RFC 3464, RFC 3462/6522).

A report is a ``multipart/report; report-type=delivery-status`` message with three
parts: Exchange-style human-readable text (what failed, the reason, then "Diagnostic
information for administrators" with the generating server, each recipient's remote
reply and the original message headers), the machine-readable
``message/delivery-status`` (RFC 3464 §2.2 per-message and §2.3 per-recipient
fields) and the original headers as ``text/rfc822-headers`` (RFC 6522 §4).

Invariants: a report is never addressed to the null sender and never generated about
a report (RFC 5321 §4.5.5, RFC 3464 §2: "MUST NOT be sent in response to a DSN");
its own envelope sender is null; it carries ``Auto-Submitted: auto-replied``
(RFC 3834 §5); no header value taken from the original message can break a header
line (CR/LF stripped); original headers are cut at ``MAX_ORIGINAL_HEADERS``.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, formatdate

MAX_ORIGINAL_HEADERS = 64 * 1024
_STATUS = re.compile(r"^\s*([245])\d\d[ -]+([245]\.\d{1,3}\.\d{1,3})\b")
_CODE = re.compile(r"^\s*([245])\d\d\b")


@dataclass(frozen=True)
class Failure:
    """One recipient in a report: its address, the reply or diagnostic, and the
    remote MTA that gave it (empty when the failure was local)."""

    recipient: str
    reply: str
    remote_mta: str = ""


def status_code(reply: str, *, permanent: bool) -> str:
    """The RFC 3463 enhanced status code of ``reply`` (x.0.0 when it has none)."""
    m = _STATUS.match(reply)
    if m is not None:
        return m.group(2)
    m = _CODE.match(reply)
    if m is not None and m.group(1) in "45":
        return f"{m.group(1)}.0.0"
    return "5.0.0" if permanent else "4.0.0"


def _clean(value: str, limit: int = 900) -> str:
    return re.sub(r"[\x00-\x1f\x7f]+", " ", value)[:limit]


def original_headers(body: bytes) -> bytes:
    """The header block of ``body`` (up to the empty line), CRLF line ends."""
    end = body.find(b"\r\n\r\n")
    block = body if end < 0 else body[:end + 2]
    block = block[:MAX_ORIGINAL_HEADERS]
    if not block.endswith(b"\r\n"):
        block = block[:block.rfind(b"\r\n") + 2] if b"\r\n" in block else b""
    return block


def build_report(*, kind: str, server_name: str, postmaster: str, original_sender: str,
                 original_subject: str, original_message_id: str, arrival: float,
                 failures: Sequence[Failure], body: bytes,
                 retry_until: float | None = None, now: float | None = None) -> bytes:
    """Build an NDR (``kind`` "failed") or delay DSN (``kind`` "delayed")."""
    if kind not in ("failed", "delayed"):
        raise ValueError("kind is failed or delayed")
    now = time.time() if now is None else now
    boundary = f"--gw-report-{secrets.token_hex(12)}"
    failed = kind == "failed"
    subject = ("Undeliverable: " if failed else "Delivery delayed: ") + _clean(
        original_subject)
    date = formatdate(now, usegmt=True)
    msgid = f"<{secrets.token_hex(16)}@{server_name}>"
    head = [
        f"From: Mail Delivery System <{postmaster}>",
        f"To: <{_clean(original_sender, 320)}>",
        f"Subject: {subject.strip()}",
        f"Date: {date}",
        f"Message-ID: {msgid}",
        "Auto-Submitted: auto-replied",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"',
    ]
    if original_message_id:
        head.append(f"In-Reply-To: {_clean(original_message_id)}")
        head.append(f"References: {_clean(original_message_id)}")
    text: list[str] = []
    if failed:
        text += ["Delivery has failed to these recipients or groups:", ""]
    else:
        text += ["Delivery is delayed to these recipients or groups:", ""]
    for f in failures:
        text += [_clean(f.recipient, 320),
                 _user_reason(f.reply) if failed else
                 "Your message hasn't been delivered yet. The server will keep trying.", ""]
    if not failed and retry_until is not None:
        text += ["The server will give up on " + format_datetime(
            datetime.fromtimestamp(retry_until, UTC)) + ".", ""]
    text += ["", "Diagnostic information for administrators:", "",
             f"Generating server: {server_name}", ""]
    for f in failures:
        text.append(_clean(f.recipient, 320))
        if f.remote_mta:
            text.append(f"Remote server: {_clean(f.remote_mta, 255)}")
        text += [f"Remote Server returned '{_clean(f.reply)}'", ""]
    text += ["Original message headers:", ""]
    headers = original_headers(body)
    status = [f"Reporting-MTA: dns;{server_name}",
              f"Arrival-Date: {formatdate(arrival, usegmt=True)}", ""]
    for f in failures:
        status += [f"Final-Recipient: rfc822;{_clean(f.recipient, 320)}",
                   f"Action: {kind}",
                   f"Status: {status_code(f.reply, permanent=failed)}"]
        if f.remote_mta:
            status.append(f"Remote-MTA: dns;{_clean(f.remote_mta, 255)}")
        status.append(f"Diagnostic-Code: smtp;{_clean(f.reply)}")
        if not failed and retry_until is not None:
            status.append(f"Will-Retry-Until: {formatdate(retry_until, usegmt=True)}")
        status.append("")
    crlf = "\r\n"
    parts = [
        crlf.join(head).encode() + b"\r\n\r\n",
        f"This is a multipart message in MIME format.{crlf}{crlf}--{boundary}{crlf}".encode(),
        b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n",
        crlf.join(text).encode("utf-8") + b"\r\n\r\n" + headers + b"\r\n",
        f"--{boundary}{crlf}Content-Type: message/delivery-status{crlf}{crlf}".encode(),
        crlf.join(status).encode("utf-8") + b"\r\n",
        f"--{boundary}{crlf}Content-Type: text/rfc822-headers{crlf}{crlf}".encode(),
        headers + b"\r\n",
        f"--{boundary}--{crlf}".encode(),
    ]
    return b"".join(parts)


def _user_reason(reply: str) -> str:
    code = status_code(reply, permanent=True)
    reasons = {
        "5.1.1": "The email address couldn't be found. Check the recipient's address and "
                 "try again.",
        "5.1.10": "The recipient's domain doesn't accept email.",
        "5.4.4": "The recipient's domain couldn't be found.",
        "5.4.6": "A mail loop was detected: the message passed through too many servers.",
        "4.4.7": "The message couldn't be delivered in the time allowed (it expired).",
        "5.3.4": "The message is too large for the recipient's system.",
        "5.7.1": "The recipient's server refused the message (not authorized).",
    }
    return reasons.get(code, "The recipient's email system refused the message.")
