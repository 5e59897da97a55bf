"""An SMTP client connection for the remote delivery agent (RFC 5321).

One ``SmtpClient`` is one TCP connection to one destination. It speaks EHLO (HELO
when EHLO is refused), STARTTLS (RFC 3207) opportunistically or as required, AUTH
PLAIN (RFC 4954) for smart hosts, and runs mail transactions with PIPELINING
(RFC 2920) when offered. After a transaction it can be reused (RSET, RFC 5321
§4.1.1.5) by the connection pool.

Invariants:
* the message is sent with CRLF line ends and dot-stuffed (RFC 5321 §4.5.2): a bare
  LF or CR never leaves this gateway, so no line ending a peer might read as
  ``<CRLF>.<CRLF>`` can be smuggled (SMTP smuggling); no line sent exceeds 998
  octets (longer ones are broken with CRLF SP, as Postfix does);
* every read has a timeout (RFC 5321 §4.5.3.2 values via TransportSettings) and a
  reply is at most ``MAX_REPLY_LINES`` lines of ``MAX_LINE`` octets;
* on any I/O error or malformed reply the connection is unusable (``broken``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import ssl
from collections.abc import Sequence
from dataclasses import dataclass

MAX_LINE = 4096  # octets of one reply line (RFC 5321 §4.5.3.1.5 requires 512)
MAX_TEXT_LINE = 998  # octets of a message line sent, before CRLF (RFC 5321 §4.5.3.1.6)
MAX_REPLY_LINES = 100
CHUNK = 64 * 1024

_REPLY = re.compile(rb"^([2-5][0-9][0-9])([ -])(.*)$")
_BARE = re.compile(rb"\r\n|\r|\n")


class SmtpClientError(Exception):
    """The conversation failed. ``reply`` is an SMTP-style reply text for reports;
    ``permanent`` is true only for a 5xx from the peer."""

    def __init__(self, reply: str, *, permanent: bool = False,
                 connection: bool = False) -> None:
        super().__init__(reply)
        self.reply = reply
        self.permanent = permanent
        self.connection = connection  # failed before a transaction could start
        self.tls_failed = False  # the STARTTLS handshake failed (retry in plaintext?)


@dataclass(frozen=True)
class Reply:
    code: int
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        return f"{self.code} {' '.join(self.lines)}".strip()

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 400


@dataclass(frozen=True)
class TransactionResult:
    """Per-recipient replies (same order as given) and the end-of-data reply."""

    recipients: tuple[Reply, ...]
    data: Reply | None


def normalise_and_stuff(body: bytes) -> bytes:
    """CRLF line ends (bare LF/CR become CRLF), a final CRLF, lines no longer than
    RFC 5321 §4.5.3.1.6 allows, and dot-stuffing (RFC 5321 §4.5.2), followed by the
    end-of-data mark."""
    lines = _BARE.split(body)
    if lines and lines[-1] == b"":
        lines.pop()
    if any(len(ln) > MAX_TEXT_LINE for ln in lines):
        lines = [piece for ln in lines for piece in _break_long_line(ln)]
    stuffed = b"\r\n".join(b"." + ln if ln.startswith(b".") else ln for ln in lines)
    return stuffed + (b"\r\n" if lines else b"") + b".\r\n"


def _break_long_line(line: bytes) -> list[bytes]:
    """A text line may hold at most 998 octets before its CRLF (RFC 5321 §4.5.3.1.6;
    RFC 5322 §2.1.1); strict peers refuse longer ones. Like Postfix
    (smtp_line_length_limit), break it by inserting CRLF SP: in a header field that is
    folding (RFC 5322 §2.2.3), in a body it keeps the text and MIME structure intact.
    Pieces leave room for a stuffed dot."""
    if len(line) <= MAX_TEXT_LINE:
        return [line]
    step = MAX_TEXT_LINE - 1
    pieces = [line[:step]]
    pieces += [b" " + line[i:i + step - 1] for i in range(step, len(line), step - 1)]
    return pieces


def _xtext_address(address: str) -> str:
    return address.replace("\r", "").replace("\n", "").replace(">", "")


class SmtpClient:
    """One SMTP client connection (see module docstring)."""

    def __init__(self, host: str, address: str, port: int, *, helo_name: str,
                 connect_timeout: float = 60.0, command_timeout: float = 300.0,
                 data_timeout: float = 600.0) -> None:
        self.host = host
        self.address = address
        self.port = port
        self.helo_name = helo_name
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self.data_timeout = data_timeout
        self.extensions: dict[str, str] = {}
        self.tls = False
        self.broken = False
        self.transactions = 0
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    # -- connection -------------------------------------------------------------------

    async def connect(self, *, require_tls: bool = False,
                      tls_context: ssl.SSLContext | None = None,
                      auth: tuple[str, str] | None = None,
                      auth_requires_tls: bool = True, use_tls: bool = True) -> None:
        """Connect, greet, EHLO, STARTTLS (unless ``use_tls`` is false) and AUTH.
        ``SmtpClientError`` with ``connection=True`` when no transaction can be run
        here (``tls_failed`` when the TLS handshake was what failed)."""
        try:
            self._reader, self._writer = await asyncio.wait_for(
                asyncio.open_connection(self.address, self.port, limit=MAX_LINE * 2),
                self.connect_timeout)
        except (OSError, TimeoutError) as exc:
            self.broken = True
            raise SmtpClientError(
                f"451 4.4.0 SMTPSEND.SocketError; connect to {self.host}[{self.address}]:"
                f"{self.port} failed: {type(exc).__name__}", connection=True) from None
        try:
            banner = await self._read(self.connect_timeout)
            if banner.code != 220:
                raise SmtpClientError(banner.text, permanent=banner.code >= 500,
                                      connection=True)
            await self._ehlo()
            if "STARTTLS" in self.extensions and (use_tls or require_tls):
                reply = await self.command("STARTTLS")
                if reply.code == 220:
                    try:
                        await self._start_tls(tls_context)
                    except (OSError, TimeoutError, ssl.SSLError) as exc:
                        self.broken = True
                        err = SmtpClientError(f"451 4.7.5 TLS negotiation with {self.host} "
                                              f"failed: {type(exc).__name__}")
                        err.tls_failed = True
                        raise err from None
                    await self._ehlo()
                elif require_tls:
                    raise SmtpClientError(f"451 4.7.4 STARTTLS refused by {self.host}: "
                                          f"{reply.text}", connection=True)
            if require_tls and not self.tls:
                raise SmtpClientError(f"451 4.7.4 {self.host} does not offer STARTTLS and "
                                      "the send connector requires TLS", connection=True)
            if auth is not None:
                await self._auth(auth, requires_tls=auth_requires_tls)
        except SmtpClientError as exc:
            exc.connection = True
            await self.close()
            raise
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ssl.SSLError) as exc:
            await self.close()
            raise SmtpClientError(f"451 4.4.0 SMTPSEND.SocketError; {self.host}: "
                                  f"{type(exc).__name__}", connection=True) from None

    async def _ehlo(self) -> None:
        reply = await self.command(f"EHLO {self.helo_name}")
        if reply.code != 250:
            reply = await self.command(f"HELO {self.helo_name}")
            if reply.code != 250:
                raise SmtpClientError(reply.text, permanent=reply.code >= 500)
            self.extensions = {}
            return
        self.extensions = {}
        for line in reply.lines[1:]:
            keyword, _, params = line.partition(" ")
            self.extensions[keyword.upper()] = params

    async def _start_tls(self, context: ssl.SSLContext | None) -> None:
        assert self._writer is not None
        if context is None:
            # Opportunistic TLS between MTAs: encrypt without authenticating the peer
            # (RFC 7435 §1.3); certificate checking would make TLS fail where
            # plaintext would succeed.
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        await asyncio.wait_for(self._writer.start_tls(context, server_hostname=self.host),
                               self.command_timeout)
        self.tls = True

    async def _auth(self, creds: tuple[str, str], *, requires_tls: bool) -> None:
        if requires_tls and not self.tls:
            raise SmtpClientError("451 4.7.3 refusing to send credentials without TLS")
        mechanisms = self.extensions.get("AUTH", "").upper().split()
        user, password = creds
        if "PLAIN" in mechanisms:
            token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
            reply = await self.command(f"AUTH PLAIN {token}", secret=True)
        elif "LOGIN" in mechanisms:
            reply = await self.command("AUTH LOGIN")
            if reply.code == 334:
                reply = await self.command(base64.b64encode(user.encode()).decode())
            if reply.code == 334:
                reply = await self.command(base64.b64encode(password.encode()).decode(),
                                           secret=True)
        else:
            raise SmtpClientError(f"451 4.7.3 {self.host} offers no usable AUTH mechanism")
        if reply.code != 235:
            raise SmtpClientError(f"{'530 5.7.3' if reply.code >= 500 else '454 4.7.3'} "
                                  f"smart host authentication failed: {reply.text}",
                                  permanent=reply.code >= 500)

    # -- I/O --------------------------------------------------------------------------

    async def _read(self, limit: float) -> Reply:
        assert self._reader is not None
        lines: list[str] = []
        code = 0
        while True:
            try:
                raw = await asyncio.wait_for(self._reader.readuntil(b"\n"), limit)
            except asyncio.LimitOverrunError:
                self.broken = True
                raise SmtpClientError("451 4.4.0 reply line too long") from None
            except (asyncio.IncompleteReadError, OSError, TimeoutError) as exc:
                self.broken = True
                what = "timed out" if isinstance(exc, TimeoutError) else "connection lost"
                raise SmtpClientError(f"451 4.4.2 {self.host}: {what}") from None
            m = _REPLY.match(raw.rstrip(b"\r\n"))
            if m is None or (code and int(m.group(1)) != code):
                self.broken = True
                raise SmtpClientError(f"451 4.4.0 {self.host}: malformed reply")
            code = int(m.group(1))
            lines.append(m.group(3).decode("utf-8", "replace"))
            if m.group(2) == b" ":
                return Reply(code, tuple(lines))
            if len(lines) >= MAX_REPLY_LINES:
                self.broken = True
                raise SmtpClientError(f"451 4.4.0 {self.host}: reply too long")

    async def _send(self, data: bytes) -> None:
        assert self._writer is not None
        try:
            self._writer.write(data)
            await asyncio.wait_for(self._writer.drain(), self.data_timeout)
        except (OSError, TimeoutError) as exc:
            self.broken = True
            raise SmtpClientError(f"451 4.4.2 {self.host}: {type(exc).__name__} "
                                  "while sending") from None

    async def command(self, line: str, *, secret: bool = False) -> Reply:
        await self._send(line.encode("utf-8") + b"\r\n")
        return await self._read(self.command_timeout)

    # -- transactions ---------------------------------------------------------------

    async def send_mail(self, sender: str, recipients: Sequence[str],
                        body: bytes) -> TransactionResult:
        """One mail transaction. Per-recipient and DATA replies are returned, not
        raised; ``SmtpClientError`` when the connection fails or MAIL is refused
        (``permanent`` for 5xx)."""
        if self.transactions:
            reply = await self.command("RSET")
            if reply.code != 250:
                self.broken = True
                raise SmtpClientError(reply.text)
        self.transactions += 1
        params = ""
        if "SIZE" in self.extensions:
            params += f" SIZE={len(body)}"
        if "8BITMIME" in self.extensions and any(b > 127 for b in body):
            params += " BODY=8BITMIME"
        commands = [f"MAIL FROM:<{_xtext_address(sender)}>{params}"]
        commands += [f"RCPT TO:<{_xtext_address(r)}>" for r in recipients]
        payload = normalise_and_stuff(body)
        if "PIPELINING" in self.extensions:
            # RFC 2920 §3.1: MAIL, RCPT... and DATA in one group; replies in order.
            await self._send("".join(c + "\r\n" for c in [*commands, "DATA"]).encode())
            mail = await self._read(self.command_timeout)
            rcpts = [await self._read(self.command_timeout) for _ in recipients]
            data = await self._read(self.command_timeout)
        else:
            mail = await self.command(commands[0])
            if mail.code != 250:
                raise SmtpClientError(mail.text, permanent=mail.code >= 500)
            rcpts = [await self.command(c) for c in commands[1:]]
            if not any(r.code in (250, 251) for r in rcpts):
                return TransactionResult(tuple(rcpts), None)
            data = await self.command("DATA")
        if mail.code != 250:
            if data.code == 354:  # a confused pipelining server: end the empty message
                await self._send(b".\r\n")
                await self._read(self.data_timeout)
            raise SmtpClientError(mail.text, permanent=mail.code >= 500)
        accepted = any(r.code in (250, 251) for r in rcpts)
        if data.code != 354:
            return TransactionResult(tuple(rcpts), data if accepted else None)
        if not accepted:  # RFC 2920 §3.1: no content without a valid recipient
            await self._send(b".\r\n")
            await self._read(self.data_timeout)
            return TransactionResult(tuple(rcpts), None)
        for i in range(0, len(payload), CHUNK):
            await self._send(payload[i:i + CHUNK])
        final = await self._read(self.data_timeout)
        return TransactionResult(tuple(rcpts), final)

    async def close(self) -> None:
        """QUIT politely when the connection is healthy, then close."""
        writer, self._writer = self._writer, None
        if writer is None:
            return
        if not self.broken:
            with contextlib.suppress(Exception):
                writer.write(b"QUIT\r\n")
                await asyncio.wait_for(writer.drain(), 5)
                if self._reader is not None:
                    await asyncio.wait_for(self._reader.readline(), 5)
        if self.broken:
            # A failed connection (a half-done TLS handshake among them) is cut, not
            # closed politely: a graceful TLS shutdown could wait on a dead peer.
            writer.transport.abort()
            return
        self.broken = True
        writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writer.wait_closed(), 5)
