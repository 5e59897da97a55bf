"""The SMTP session: connector selection, the command state machine, EHLO, STARTTLS
and AUTH (MAIL/RCPT/DATA live in ``protocols.smtp.mail``).

Role: turn the policy's decisions (``gateway.connectors``, docs/dev/smtp-policy.md)
into replies at the command where Exchange makes them (reference
exchange-semantics.md §4). Which command is legal in which state is the table
``RULES``; each command has one ``do_<VERB>`` method.

Invariants:
* the connector is chosen before the banner from the connection's addresses (after a
  PROXY header from a trusted proxy only, done by the listener); no connector: ``421
  4.3.2 Service not available`` and close;
* STARTTLS refuses pipelined plaintext after the command (RFC 3207 §4.2, CVE-2011-0411)
  and forgets everything learnt before the handshake (EHLO, AUTH);
* AUTH payloads never reach a log; the auth service alone delays failures;
* EHLO's ``AUTH`` keyword and the mechanisms AUTH accepts are the same answer of the
  shared policy (``protocols.smtp.auth.offered``, i.e. ``auth.policy``);
* every limit closes the connection with a 421 when reached (MaxProtocolErrors,
  MaxLogonFailures, ConnectionTimeout, ConnectionInactivityTimeout).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from auth.errors import AuthenticationFailed, AuthUnavailable, MechanismCancelled, MechanismError
from auth.mechanisms.sasl import MAX_ENCODED_LENGTH, SendChallenge
from gateway.connectors import replies as R
from gateway.errors import GatewayError
from gateway.listeners import pause_for_starttls, starttls_buffer_empty
from protocols.smtp import auth as smtp_auth
from protocols.smtp import replies
from protocols.smtp.core import (
    CONNECTED,
    GREETED,
    MAIL,
    RCPT,
    LineTooLong,
    SessionClosed,
    Transaction,
)
from protocols.smtp.mail import MailCommands
from protocols.smtp.parser import (
    COMMAND_LIMITS,
    DEFAULT_COMMAND_LIMIT,
    CommandSyntaxError,
    is_valid_helo_domain,
    parse_command,
)

if TYPE_CHECKING:
    from gateway.listeners.stream import ConnectionInfo
    from protocols.smtp.context import SmtpContext

log = logging.getLogger("protocols.smtp")

TLS_HANDSHAKE_TIMEOUT = 15.0

# verb -> {state: refusal}; a state not listed allows the command (RFC 5321 §4.1.4,
# RFC 4954 §4: no AUTH inside a transaction; RFC 3207 §4: STARTTLS after EHLO).
RULES: dict[str, dict[str, str]] = {
    "MAIL": {CONNECTED: replies.SEND_HELLO_FIRST, MAIL: replies.SENDER_ALREADY,
             RCPT: replies.SENDER_ALREADY},
    "RCPT": {CONNECTED: replies.SEND_HELLO_FIRST, GREETED: replies.NEED_MAIL},
    "DATA": {CONNECTED: replies.SEND_HELLO_FIRST, GREETED: replies.NEED_MAIL,
             MAIL: replies.NEED_RCPT},
    "AUTH": {CONNECTED: replies.SEND_HELLO_FIRST, MAIL: replies.BAD_SEQUENCE,
             RCPT: replies.BAD_SEQUENCE},
    "STARTTLS": {CONNECTED: replies.SEND_HELLO_FIRST, MAIL: replies.BAD_SEQUENCE,
                 RCPT: replies.BAD_SEQUENCE},
}


class SmtpSession(MailCommands):
    """One SMTP connection (see the module docstring)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 info: ConnectionInfo, ctx: SmtpContext) -> None:
        super().__init__(reader, writer, info, ctx)
        self._handlers: dict[str, Callable[[str], Awaitable[None]]] = {
            "EHLO": self.do_EHLO, "HELO": self.do_HELO, "MAIL": self.do_MAIL,
            "RCPT": self.do_RCPT, "DATA": self.do_DATA, "RSET": self.do_RSET,
            "NOOP": self.do_NOOP, "QUIT": self.do_QUIT, "VRFY": self.do_VRFY,
            "EXPN": self.do_EXPN, "HELP": self.do_HELP, "STARTTLS": self.do_STARTTLS,
            "AUTH": self.do_AUTH,
        }

    # -- life cycle -------------------------------------------------------------------

    async def run(self) -> None:
        """Serve the connection until QUIT, a limit, a timeout or the client leaves."""
        ctx = self.ctx
        try:
            policy = await ctx.policy.open_session(
                local_ip=self.info.local_ip, local_port=self.info.local_port,
                remote_ip=self.info.remote_ip, tls_active=self.info.tls)
        except GatewayError as exc:
            log.warning("smtp %s: store unavailable at connect: %s", self.info.connection_id,
                        exc)
            await self._send_and_close(replies.SERVICE_NOT_AVAILABLE)
            return
        if not policy.accepted or ctx.shutting_down:
            log.info("smtp %s: no receive connector for %s -> %s:%d (%s)",
                     self.info.connection_id, self.info.remote_ip, self.info.local_ip,
                     self.info.local_port, policy.connection.reason)
            await self._send_and_close(str(policy.connection.reply) if not ctx.shutting_down
                                       else replies.SHUTTING_DOWN)
            return
        self.policy = policy
        connector = policy.connector
        self.connector_id = connector.identity
        self.log_verbose = connector.protocol_logging_level.lower() == "verbose"
        self.inactivity_timeout = connector.connection_inactivity_timeout
        self.deadline = time.monotonic() + connector.connection_timeout
        self.max_protocol_errors = connector.max_protocol_errors
        self.max_logon_failures = connector.max_logon_failures
        self.tarpit = connector.tarpit_interval
        self.smtputf8_offered = "SMTPUTF8" in policy.ehlo_keywords()
        self.plog("+", "", f"connector {connector.name}")
        if not ctx.counter.admit(connector.id, self.info.remote_ip,
                                 max_total=connector.max_inbound_connection,
                                 max_per_source=connector.max_inbound_connection_per_source):
            log.info("smtp %s: connection limit of %s reached for %s",
                     self.info.connection_id, connector.identity, self.info.remote_ip)
            self.reply(replies.TOO_MANY_CONNECTIONS)
            await self._finish("connection limit")
            return
        try:
            self.reply(policy.banner())
            await self._command_loop()
        except SessionClosed as exc:
            await self._finish(str(exc))
        except (ConnectionError, OSError) as exc:
            await self._finish(f"connection error: {exc}")
        finally:
            self.stop_watchdog()
            ctx.counter.release(connector.id, self.info.remote_ip)

    async def _send_and_close(self, line: str) -> None:
        self.reply(line)
        try:
            await self.flush()
        except (ConnectionError, OSError):
            pass

    async def _finish(self, why: str) -> None:
        try:
            await self.flush()
        except (ConnectionError, OSError):
            pass
        self.plog("-", "", why)

    async def _command_loop(self) -> None:
        while True:
            verb_limit = max(COMMAND_LIMITS.values())
            try:
                line = await self.read_line(verb_limit)
            except LineTooLong:
                await self.protocol_error(replies.LINE_TOO_LONG)
                continue
            try:
                command = parse_command(line, utf8=self.smtputf8_offered)
            except CommandSyntaxError as exc:
                self.plog("<", _printable(line))
                await self.protocol_error(exc.reply)
                continue
            self.plog("<", _redact(command.verb, command.arg, line))
            if len(line) > COMMAND_LIMITS.get(command.verb, DEFAULT_COMMAND_LIMIT):
                await self.protocol_error(replies.LINE_TOO_LONG)
                continue
            handler = self._handlers.get(command.verb)
            if handler is None:
                await self.protocol_error(replies.UNRECOGNIZED)
                continue
            refusal = RULES.get(command.verb, {}).get(self.state)
            if refusal is not None:
                await self.protocol_error(refusal)
                continue
            await handler(command.arg)

    # -- greeting ---------------------------------------------------------------------

    async def do_EHLO(self, arg: str) -> None:
        if not arg:
            await self.protocol_error(replies.HELO_NEEDS_DOMAIN)
            return
        if not is_valid_helo_domain(arg):
            await self.protocol_error(replies.INVALID_DOMAIN)
            return
        self.helo, self.esmtp = arg, True
        self.reset_transaction()
        self.state = GREETED
        # RFC 5321 §4.1.1.1 / Exchange: "250-<fqdn> Hello [<ip>]" then the keywords.
        lines = [f"{self.policy.fqdn} Hello [{self.info.remote_ip}]"]
        for keyword in self.policy.ehlo_keywords():
            if keyword == "STARTTLS" and self.ctx.tls_context is None:
                continue
            if keyword.startswith("AUTH "):
                continue  # replaced by the shared policy's answer below
            lines.append(keyword)
        self._ehlo_auth(lines)
        self.reply_lines(250, lines)

    async def do_HELO(self, arg: str) -> None:
        if not arg or not is_valid_helo_domain(arg):
            await self.protocol_error(replies.INVALID_DOMAIN)
            return
        self.helo, self.esmtp = arg, False
        self.reset_transaction()
        self.state = GREETED
        self.reply(f"250 {self.policy.fqdn} Hello [{self.info.remote_ip}]")

    # -- simple commands --------------------------------------------------------------

    async def do_RSET(self, arg: str) -> None:
        self.reset_transaction()
        self.reply(replies.RESETTING)

    async def do_NOOP(self, arg: str) -> None:
        self.reply(replies.OK)

    async def do_QUIT(self, arg: str) -> None:
        self.reply(replies.CLOSING)
        await self.flush()
        raise SessionClosed("QUIT")

    async def do_VRFY(self, arg: str) -> None:
        # security.md A2: VRFY/EXPN off (RFC 5321 §3.5.3 allows 252).
        self.reply(replies.CANNOT_VRFY)

    async def do_EXPN(self, arg: str) -> None:
        self.reply(replies.NOT_IMPLEMENTED)

    async def do_HELP(self, arg: str) -> None:
        self.reply("214 2.0.0 See RFC 5321")

    # -- STARTTLS (RFC 3207) ----------------------------------------------------------

    async def do_STARTTLS(self, arg: str) -> None:
        if arg:
            await self.protocol_error(replies.INVALID_ARGS)
            return
        decision = self.policy.check_starttls()
        if decision.allowed and self.ctx.tls_context is None:
            self.reply("454 4.7.0 TLS not available")
            return
        if not decision.allowed:
            self.reply(str(decision.reply))
            return
        # RFC 3207 §4.2 / CVE-2011-0411: nothing may follow STARTTLS before the handshake.
        if self.buffer or not starttls_buffer_empty(self.reader):
            log.warning("smtp %s: plaintext pipelined after STARTTLS from %s; closing",
                        self.info.connection_id, self.info.remote_ip)
            await self.close_with(replies.STARTTLS_PIPELINED)
        pause_for_starttls(self.writer)
        self.reply(str(decision.reply))
        await self.flush()
        context = smtp_auth.starttls_context(self.policy.connector, self.ctx.tls_context,
                                             self.ctx.tls_client_auth)
        assert context is not None
        try:
            await self.writer.start_tls(context,
                                        ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT)
        except (ssl.SSLError, OSError, TimeoutError) as exc:
            log.info("smtp %s: STARTTLS handshake with %s failed: %s",
                     self.info.connection_id, self.info.remote_ip, exc)
            raise SessionClosed("TLS handshake failed") from None
        self.info = self.info.with_tls(self.writer)
        self.policy.tls_started()
        self.plog("*", "", f"TLS negotiated {self.info.tls_version} {self.info.tls_cipher}")
        # RFC 3207 §4.2: discard knowledge obtained before TLS; the client says EHLO again.
        self.helo, self.esmtp = "", False
        self.tx = Transaction()
        self.state = CONNECTED

    # -- AUTH (RFC 4954) ---------------------------------------------------------------

    async def do_AUTH(self, arg: str) -> None:
        if not arg:
            await self.protocol_error(replies.AUTH_NEEDS_MECHANISM)
            return
        mechanism, _, initial = arg.partition(" ")
        initial = initial.strip()
        if not self.policy.principal.is_anonymous:
            self.reply(str(R.AUTH_ALREADY))
            return
        # One answer for EHLO and AUTH: auth.policy (docs/authentication.md).
        offered = smtp_auth.offered(self.policy, self.info)
        if mechanism.upper() not in offered:
            log.info("smtp %s: AUTH %s refused on %s (offered: %s)", self.info.connection_id,
                     _printable(mechanism.encode("ascii", "replace"), 20),
                     self.connector_id, " ".join(offered) or "none")
            self.reply(str(R.AUTH_UNRECOGNIZED))
            return
        try:
            exchange = smtp_auth.exchange_for(mechanism, self.info, self.ctx.channel_binding)
            step = exchange.begin(initial or None)
            while isinstance(step, SendChallenge):
                self.reply(f"334 {step.text}")
                try:
                    response = await self.read_line(MAX_ENCODED_LENGTH + 2)
                except LineTooLong:
                    raise MechanismError("response too long") from None
                self.plog("<", "****", "AUTH response redacted")
                step = exchange.feed(response)
            if self.ctx.auth is None:
                raise AuthUnavailable("no authentication service")
            principal = await self.ctx.auth.authenticate(
                step.credential, protocol="smtp", mechanism=exchange.mechanism.name,
                source_ip=self.info.remote_ip)
        except MechanismCancelled:
            self.reply(replies.AUTH_CANCELLED)
            return
        except MechanismError:
            await self.protocol_error(replies.AUTH_BAD_DATA)
            return
        except AuthenticationFailed:
            await self._logon_failure(replies.AUTH_FAILED)
            return
        except AuthUnavailable:
            self.reply(replies.AUTH_UNAVAILABLE)
            return
        try:
            result = await self.policy.set_principal(principal)
        except GatewayError as exc:
            log.warning("smtp %s: AUTH not completed: %s", self.info.connection_id, exc)
            self.reply(replies.AUTH_UNAVAILABLE)
            return
        if not result.allowed:
            log.info("smtp %s: %s authenticated but refused on %s: %s",
                     self.info.connection_id, principal.name, self.connector_id,
                     result.reason)
            await self._logon_failure(str(result.reply))
            return
        self.plog("*", "", f"authenticated as {principal.name}")
        self.reply(str(result.reply))

    def _ehlo_auth(self, lines: list[str]) -> None:
        """Add ``AUTH <mechanisms>`` (RFC 4954 §3) once, before authentication only."""
        if not self.policy.principal.is_anonymous:
            return
        mechanisms = smtp_auth.offered(self.policy, self.info)
        if mechanisms:
            at = lines.index("8BITMIME") if "8BITMIME" in lines else len(lines)
            lines.insert(at, "AUTH " + " ".join(mechanisms))

    async def _logon_failure(self, line: str) -> None:
        self.reply(line)
        self.logon_failures += 1
        if self.max_logon_failures and self.logon_failures >= self.max_logon_failures:
            await self.close_with(replies.TOO_MANY_ERRORS)


def _printable(line: bytes, limit: int = 200) -> str:
    text = line[:limit].decode("ascii", "backslashreplace")
    return "".join(c if 32 <= ord(c) < 127 else "?" for c in text)


def _redact(verb: str, arg: str, line: bytes) -> str:
    """The command for the protocol log; AUTH initial responses are never written."""
    if verb == "AUTH":
        mechanism = arg.partition(" ")[0]
        return f"AUTH {mechanism}" + (" ****" if " " in arg else "")
    return _printable(line)
