"""One POP3 session: the state machine of RFC 1939 with CAPA, STLS and SASL AUTH.

Role: drive a connection from the greeting to QUIT. ``commands.COMMANDS`` says which
command is legal in which state; each command is one ``do_<keyword>`` method
(AUTHORIZATION commands here, TRANSACTION commands in ``transaction``). Credentials
go through the shared ``AuthService`` (it tarpits failures and checks
``Mailbox.pop_enabled``); the login type (Set-PopSettings -LoginType) is applied
through ``gateway.protocol_settings.login_allowed``, the same function that decides
what CAPA advertises.

Invariants: the organisation's current settings are read at every decision, so a
Set-PopSettings change applies to open connections at their next command; at most
``MAX_BAD_COMMANDS`` invalid commands and ``MAX_AUTH_FAILURES`` failed logins per
connection, then the connection is closed; reads wait at most the pre-authentication
or authenticated timeout; client-facing error texts are generic, details go to the
log; the per-user connection slot is released however the session ends.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass, field
from typing import Protocol

from auth.credentials import Credential, PasswordCredential
from auth.errors import (
    AuthenticationFailed,
    AuthUnavailable,
    MechanismCancelled,
    MechanismError,
)
from auth.mechanisms.external import NAME as EXTERNAL
from auth.mechanisms.external import external_exchange, offer_external
from auth.mechanisms.sasl import MAX_ENCODED_LENGTH, MECHANISMS, SaslExchange, SendChallenge
from auth.principal import Principal
from gateway.errors import GatewayError
from gateway.listeners import ConnectionInfo, pause_for_starttls, starttls_buffer_empty
from gateway.listeners.idle import IdleWatch
from gateway.protocol_settings import (
    ConnectionLease,
    ProtocolSettings,
    UserConnectionCounter,
    advertised_mechanisms,
    login_allowed,
    offer_starttls,
)
from protocols.pop3 import wire
from protocols.pop3.commands import COMMANDS, Command, CommandError, State, check_arity, parse
from protocols.pop3.maildrop import Maildrop, MaildropStore
from protocols.pop3.readahead import ReadAhead
from protocols.pop3.transaction import CHUNK, SIGN_OFF, TransactionCommands
from protocols.pop3.wire import CloseConnection

log = logging.getLogger("protocols.pop3")

MAX_BAD_COMMANDS = 10
MAX_AUTH_FAILURES = 3
TLS_HANDSHAKE_TIMEOUT = 15.0
# SASL mechanisms in advertising order; EXTERNAL is added on connections with a
# verified client certificate; the login type filters them (docs/pop3.md).
SASL_MECHANISMS: tuple[str, ...] = ("PLAIN", "LOGIN", "NTLM")

NOT_VALID = "Command is not valid in this state."
LOGON_FAILURE = "[AUTH] Logon failure: unknown user name or bad password."
TLS_FIRST = "Plain text logins are not allowed without TLS: use STLS first."


class Authenticator(Protocol):
    """``auth.service.AuthService.authenticate``."""

    async def authenticate(self, credential: Credential, *, protocol: str, mechanism: str,
                           source_ip: str) -> Principal: ...


@dataclass
class Pop3Context:
    """What every session of one service shares; the service replaces ``settings``
    when the organisation configuration changes."""

    settings: ProtocolSettings
    mail: MaildropStore
    auth: Authenticator
    tls_context: ssl.SSLContext | None
    connections: UserConnectionCounter = field(default_factory=UserConnectionCounter)
    # NTLM channel binding of our certificate (auth.ntlm.verify, RFC 5929 §4.1), used on
    # TLS connections only; None: NTLM runs without it.
    channel_binding: bytes | None = None


class Pop3Session(TransactionCommands):
    """Serve one connection; ``await Pop3Session(ctx, reader, writer, info).run()``."""

    def __init__(self, ctx: Pop3Context, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, info: ConnectionInfo) -> None:
        self.ctx = ctx
        self.reader = reader
        self.writer = writer
        self.info = info
        self.state = State.AUTHORIZATION
        self.pending_user: str | None = None
        self.principal: Principal | None = None
        self.maildrop: Maildrop | None = None
        self.lease: ConnectionLease | None = None
        self.read_ahead = ReadAhead(CHUNK)
        self.idle = IdleWatch()
        self.bad_commands = 0
        self.auth_failures = 0
        self._log_extra = {"ctx": {"conn": info.connection_id}}

    # -- plumbing --------------------------------------------------------------------

    @property
    def settings(self) -> ProtocolSettings:
        return self.ctx.settings

    @property
    def timeout(self) -> float:
        s = self.settings
        return (s.authenticated_connection_timeout if self.state is State.TRANSACTION
                else s.pre_authenticated_connection_timeout)

    async def send(self, data: bytes) -> None:
        """Write and wait for the transport to drain (a client that stops reading is
        cut off after the idle timeout)."""
        transport = self.writer.transport
        if transport.is_closing():
            raise ConnectionResetError("the client went away")
        self.writer.write(data)
        if transport.get_write_buffer_size() == 0:
            return  # all handed to the kernel: nothing to wait for
        async with asyncio.timeout(self.timeout):
            await self.writer.drain()

    async def send_parts(self, parts: tuple[bytes, ...]) -> None:
        """``send`` of the parts concatenated, without concatenating them: one
        ``writelines`` (a single vectored write on uvloop)."""
        transport = self.writer.transport
        if transport.is_closing():
            raise ConnectionResetError("the client went away")
        self.writer.writelines(parts)
        if transport.get_write_buffer_size() == 0:
            return
        async with asyncio.timeout(self.timeout):
            await self.writer.drain()

    async def reply(self, ok: bool, text: str = "") -> None:
        await self.send(wire.status(ok, text))

    async def run(self) -> None:
        try:
            await self.reply(True, self.settings.banner)
            while True:
                try:
                    line = await self.idle.wait(
                        wire.line(self.reader, wire.MAX_COMMAND_LINE), self.timeout)
                except TimeoutError:
                    await self.reply(False, "Connection timed out.")
                    return
                except wire.LineTooLong:
                    await self.reply(False, "Protocol error: line too long.")
                    return
                await self.dispatch(line)
        except (CloseConnection, wire.ClientGone, ConnectionError, TimeoutError):
            pass
        finally:
            self.idle.close()
            self.read_ahead.cancel()
            if self.lease is not None:
                self.lease.release()

    async def dispatch(self, line: bytes) -> None:
        try:
            command = parse(line)
            spec = COMMANDS.get(command.keyword)
            if spec is None:
                raise CommandError("unknown command")
            if self.state not in spec.states:
                await self.bad_command(NOT_VALID)
                return
            check_arity(command, spec)
        except CommandError as exc:
            await self.bad_command(f"Protocol error: {exc}.")
            return
        if command.keyword != "PASS":
            self.pending_user = None  # RFC 1939 §7: PASS only right after USER
        handler = getattr(self, f"do_{command.keyword.lower()}")
        try:
            await handler(command)
        except CommandError as exc:
            await self.bad_command(f"Protocol error: {exc}.")

    async def bad_command(self, text: str) -> None:
        self.bad_commands += 1
        if self.bad_commands >= MAX_BAD_COMMANDS:
            await self.reply(False, "Too many invalid commands, closing the connection.")
            raise CloseConnection()
        await self.reply(False, text)

    # -- AUTHORIZATION state (RFC 1939 §4, RFC 2449, RFC 2595, RFC 5034) ---------------

    def capabilities(self) -> list[str]:
        """RFC 2449 §5 CAPA lines for the current state and connection."""
        caps = ["TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"]
        if self.state is State.AUTHORIZATION:
            tls = self.info.tls
            if login_allowed(self.settings, tls_active=tls, method="clear-login"):
                caps.append("USER")
            mechs = self.sasl_mechanisms()
            if mechs:
                caps.append("SASL " + " ".join(mechs))
            if offer_starttls(tls_active=tls, tls_available=self.ctx.tls_context is not None):
                caps.append("STLS")
        return caps

    def sasl_mechanisms(self) -> tuple[str, ...]:
        """AUTH mechanisms offered and accepted now: the login type's answer
        (gateway.protocol_settings) over PLAIN, LOGIN, NTLM and, with a verified client
        certificate, EXTERNAL (RFC 4422 appendix A)."""
        available = SASL_MECHANISMS + (
            (EXTERNAL,) if offer_external(self.info.client_certificate) else ())
        return advertised_mechanisms(self.settings, tls_active=self.info.tls,
                                     available=available)

    async def do_capa(self, command: Command) -> None:
        await self.send(wire.multiline("", self.capabilities()))

    async def do_quit(self, command: Command) -> None:
        if self.state is State.TRANSACTION:
            await self.update()
        else:
            await self.reply(True, SIGN_OFF)
        raise CloseConnection()

    async def do_user(self, command: Command) -> None:
        decision = login_allowed(self.settings, tls_active=self.info.tls, method="clear-login")
        if not decision:
            log.info("pop3 USER refused: %s", decision.reason, extra=self._log_extra)
            await self.reply(False, TLS_FIRST)
            return
        self.pending_user = command.rest.strip()
        await self.reply(True)

    async def do_pass(self, command: Command) -> None:
        user, self.pending_user = self.pending_user, None
        if user is None:
            await self.bad_command(NOT_VALID)
            return
        if not login_allowed(self.settings, tls_active=self.info.tls, method="clear-login"):
            await self.reply(False, TLS_FIRST)
            return
        # RFC 1939 §7 PASS: the whole rest of the line is the password.
        credential = PasswordCredential(user, command.rest)
        await self.authenticate(credential, "USER")

    async def do_auth(self, command: Command) -> None:
        offered = self.sasl_mechanisms()
        if not command.args:
            await self.send(wire.multiline("", list(offered)))
            return
        name = command.args[0].upper()
        if name not in offered:
            if name in MECHANISMS:
                await self.reply(False, "Authentication with this mechanism requires TLS: "
                                        "use STLS first.")
            else:
                await self.reply(False, "Unrecognized authentication type.")
            return
        initial = command.args[1] if len(command.args) > 1 else None
        try:
            if name == EXTERNAL:
                exchange = external_exchange(self.info.client_certificate)
            else:  # NTLM is bound to our certificate over TLS (MS-NLMP §2.2.2.1)
                exchange = SaslExchange.create(
                    name, allowed=frozenset(offered),
                    channel_binding=self.ctx.channel_binding if self.info.tls else None)
            step = exchange.begin(initial)
            while isinstance(step, SendChallenge):
                # RFC 5034 §4: "+" SP base64 challenge; the client answers with one line.
                await self.send(f"+ {step.text}\r\n".encode("ascii"))
                try:
                    line = await self.idle.wait(
                        wire.line(self.reader, MAX_ENCODED_LENGTH + 2), self.timeout)
                except wire.LineTooLong:
                    await self.reply(False, "Protocol error: line too long.")
                    raise CloseConnection() from None
                step = exchange.feed(line)
        except MechanismCancelled:
            await self.reply(False, "Authentication cancelled.")
            return
        except MechanismError:
            await self.bad_command("Invalid authentication data.")
            return
        await self.authenticate(step.credential, exchange.mechanism.name)

    async def do_stls(self, command: Command) -> None:
        # RFC 2595 §4
        if self.info.tls:
            await self.bad_command("Command not permitted when TLS active.")
            return
        if self.ctx.tls_context is None:
            await self.reply(False, "TLS is not available.")
            return
        if not starttls_buffer_empty(self.reader):
            # Pipelined bytes would be taken as if sent under TLS (RFC 2595 §3.1,
            # security.md A5): refuse and close.
            log.warning("pop3 input pipelined after STLS from %s; closing",
                        self.info.remote_ip, extra=self._log_extra)
            await self.reply(False, "Unexpected input after STLS.")
            raise CloseConnection()
        pause_for_starttls(self.writer)
        self.writer.write(wire.status(True, "Begin TLS negotiation."))
        try:
            await self.writer.start_tls(self.ctx.tls_context,
                                        ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT)
        except (ssl.SSLError, OSError, TimeoutError, ConnectionError) as exc:
            log.info("pop3 STLS handshake with %s failed: %s", self.info.remote_ip, exc,
                     extra=self._log_extra)
            raise CloseConnection() from None
        # RFC 2595 §4: forget everything learnt before TLS.
        self.info = self.info.with_tls(self.writer)
        self.pending_user = None

    # -- login -------------------------------------------------------------------------

    async def authenticate(self, credential: Credential, mechanism: str) -> None:
        try:
            principal = await self.ctx.auth.authenticate(
                credential, protocol="pop3", mechanism=mechanism,
                source_ip=self.info.remote_ip)
        except AuthenticationFailed:
            # The service already waited the tarpit delay (docs/authentication.md).
            self.auth_failures += 1
            await self.reply(False, LOGON_FAILURE)
            if self.auth_failures >= MAX_AUTH_FAILURES:
                raise CloseConnection() from None
            return
        except AuthUnavailable:
            await self.reply(False, "[SYS/TEMP] Authentication is temporarily unavailable.")
            return
        await self.enter_transaction(principal)

    async def enter_transaction(self, principal: Principal) -> None:
        """RFC 1939 §4: take the maildrop and enter the TRANSACTION state."""
        if principal.mailbox_id is None:
            await self.reply(False, "[SYS/PERM] This account has no mailbox.")
            return
        lease = self.ctx.connections.acquire(principal.mailbox_id,
                                             self.settings.max_connections_per_user)
        if lease is None:
            log.info("pop3 %s refused: MaxConnectionsPerUser %d reached", principal.name,
                     self.settings.max_connections_per_user, extra=self._log_extra)
            await self.reply(False, "[IN-USE] Too many connections for this user.")
            return
        try:
            maildrop = await Maildrop.load(self.ctx.mail, principal.mailbox_id)
        except GatewayError as exc:
            lease.release()
            log.warning("pop3 cannot open the maildrop of %s: %s", principal.name, exc,
                        extra=self._log_extra)
            await self.reply(False, "[SYS/TEMP] The mailbox is temporarily unavailable.")
            return
        self.principal, self.maildrop, self.lease = principal, maildrop, lease
        self.state = State.TRANSACTION
        log.info("pop3 login %s: %d messages, %d octets", principal.name, maildrop.count,
                 maildrop.octets, extra=self._log_extra)
        await self.reply(True, "User successfully logged on.")
