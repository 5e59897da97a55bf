"""Commands of any state and of the not-authenticated state (RFC 9051 §6.1, §6.2):
CAPABILITY, NOOP, LOGOUT, ID (RFC 2971), STARTTLS, LOGIN, AUTHENTICATE (SASL-IR,
RFC 4959), ENABLE (RFC 5161), NAMESPACE (RFC 2342) and IDLE (RFC 2177).

Invariants: credentials are refused before TLS unless the login type allows cleartext
(LOGINDISABLED, RFC 3501 §6.2.3); STARTTLS refuses pipelined input (security.md A5);
authentication failures carry no detail (the auth service already tarpitted them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl

from auth.credentials import Credential, PasswordCredential
from auth.errors import AuthenticationFailed, AuthUnavailable, MechanismCancelled, MechanismError
from auth.mechanisms.external import NAME as EXTERNAL
from auth.mechanisms.external import external_exchange, offer_external
from auth.mechanisms.sasl import MAX_ENCODED_LENGTH, Authenticate, SaslExchange, SendChallenge
from auth.principal import Principal
from gateway.listeners import pause_for_starttls, starttls_buffer_empty
from gateway.protocol_settings import login_allowed
from protocols.imap import limits
from protocols.imap.connection import ConnectionClosed
from protocols.imap.parser import Cursor, ParseError
from protocols.imap.state import SASL_MECHANISMS, Bad, Bye, No, State
from protocols.imap.updates import UpdatesMixin

log = logging.getLogger("protocols.imap")

ENABLE_KNOWN = ("CONDSTORE", "QRESYNC", "IMAP4REV2")


class AnyStateCommands(UpdatesMixin):
    async def do_capability(self, tag: str, cur: Cursor, uid: bool) -> str:
        cur.end()
        self.untagged("CAPABILITY " + " ".join(self.capabilities()))
        return "CAPABILITY completed"

    async def do_noop(self, tag: str, cur: Cursor, uid: bool) -> str:
        cur.end()
        return "NOOP completed"

    async def do_check(self, tag: str, cur: Cursor, uid: bool) -> str:
        cur.end()  # RFC 3501 §6.4.1: nothing to do, the store is always consistent
        return "CHECK completed"

    async def do_logout(self, tag: str, cur: Cursor, uid: bool) -> str:
        cur.end()
        self.untagged("BYE Logging out")
        self.state = State.LOGOUT
        return "LOGOUT completed"

    async def do_id(self, tag: str, cur: Cursor, uid: bool) -> str:
        """RFC 2971: the client's fields are read (bounded) and ignored."""
        cur.sp()
        if not cur.accept(b"NIL"):
            fields = cur.paren_list(cur.nstring)
            if len(fields) % 2 or len(fields) > 2 * limits.MAX_ID_FIELDS:
                raise ParseError("bad ID parameter list")
        cur.end()
        self.untagged('ID ("name" "gateway" "vendor" "gateway")')
        return "ID completed"

    async def do_namespace(self, tag: str, cur: Cursor, uid: bool) -> str:
        cur.end()
        self.untagged('NAMESPACE (("" "/")) NIL NIL')  # one personal namespace (RFC 2342)
        return "NAMESPACE completed"

    async def do_enable(self, tag: str, cur: Cursor, uid: bool) -> str:
        """RFC 5161; QRESYNC implies CONDSTORE (RFC 7162 §3.2.3)."""
        names: list[str] = []
        while cur.maybe_sp():
            names.append(cur.atom().upper())
        cur.end()
        if not names:
            raise ParseError("ENABLE needs a capability")
        newly: list[str] = []
        for name in names:
            if name in ENABLE_KNOWN and name not in self.enabled:
                self.enabled.add(name)
                newly.append("IMAP4rev2" if name == "IMAP4REV2" else name)
            if name in ("CONDSTORE", "QRESYNC"):
                self.condstore = True
        self.untagged("ENABLED" + "".join(" " + n for n in newly))
        return "ENABLE completed"

    # -- TLS and authentication -------------------------------------------------------

    async def do_starttls(self, tag: str, cur: Cursor, uid: bool) -> str:
        cur.end()
        ctx = self.ctx.tls_context
        if self.info.tls or ctx is None:
            raise Bad("STARTTLS not available")
        if not starttls_buffer_empty(self.conn.reader):
            # RFC 2595 §3.1 / security.md A5: plaintext pipelined after STARTTLS would be
            # read as if it had come over TLS.
            raise Bye("Data pipelined after STARTTLS")
        pause_for_starttls(self.conn.writer)  # the ClientHello must reach the TLS layer
        await self.conn.send(f"{tag} OK Begin TLS negotiation now\r\n".encode())
        try:
            await asyncio.wait_for(self.conn.writer.start_tls(ctx), 30)
        except (TimeoutError, ssl.SSLError, ConnectionError, OSError) as exc:
            raise ConnectionClosed() from exc
        self.info = self.info.with_tls(self.conn.writer)
        return ""  # the tagged reply went out before the handshake

    def _check_allowed(self, mechanism: str | None) -> None:
        """The organisation's login type (gateway.protocol_settings.login_allowed)."""
        decision = login_allowed(self.policy, tls_active=self.info.tls,
                                 method="clear-login" if mechanism is None else "sasl",
                                 mechanism=mechanism)
        if not decision.allowed:
            log.info("imap %s: login refused: %s", self.info.connection_id, decision.reason)
            raise No("Use STARTTLS or the TLS port to log in", "PRIVACYREQUIRED")

    async def do_login(self, tag: str, cur: Cursor, uid: bool) -> str:
        cur.sp()
        user = cur.text_astring()
        cur.sp()
        password = cur.text_astring()
        cur.end()
        self._check_allowed(None)
        await self._authenticate(PasswordCredential(user, password), "LOGIN")
        return f"[CAPABILITY {' '.join(self.capabilities())}] Logged in"

    async def do_authenticate(self, tag: str, cur: Cursor, uid: bool) -> str:
        cur.sp()
        name = cur.atom().upper()
        initial: str | None = None
        if cur.maybe_sp():
            initial = cur.atom()  # base64 or "=" (RFC 4959 §3)
        cur.end()
        if name not in SASL_MECHANISMS and name != EXTERNAL:
            raise No("Unsupported authentication mechanism", "CANNOT")
        if name == EXTERNAL and not offer_external(self.info.client_certificate):
            # RFC 4422 appendix A: EXTERNAL needs an authentication already established
            raise No("EXTERNAL needs a TLS client certificate", "CANNOT")
        self._check_allowed(name)
        try:
            if name == EXTERNAL:
                exchange = external_exchange(self.info.client_certificate)
            else:  # NTLM is bound to our certificate over TLS (MS-NLMP §2.2.2.1)
                exchange = SaslExchange.create(
                    name, allowed=frozenset(SASL_MECHANISMS),
                    channel_binding=self.ctx.channel_binding if self.info.tls else None)
            step = exchange.begin(initial)
            # the whole exchange counts as idle time before login
            async with asyncio.timeout(self.policy.pre_authenticated_connection_timeout):
                while isinstance(step, SendChallenge):
                    await self.conn.send(f"+ {step.text}\r\n".encode("ascii"))
                    line = await self.conn.read_line(MAX_ENCODED_LENGTH + 2)
                    step = exchange.feed(line)
        except TimeoutError:
            raise Bye("Autologout; idle for too long") from None
        except MechanismCancelled:
            raise Bad("Authentication cancelled") from None
        except MechanismError as exc:
            raise Bad(str(exc) or "Invalid authentication data") from None
        assert isinstance(step, Authenticate)
        await self._authenticate(step.credential, exchange.mechanism.name)
        return f"[CAPABILITY {' '.join(self.capabilities())}] Authenticated"

    async def _authenticate(self, credential: Credential, mechanism: str) -> None:
        try:
            principal = await self.ctx.auth.authenticate(
                credential, protocol="imap", mechanism=mechanism,
                source_ip=self.info.remote_ip)
        except AuthenticationFailed:
            raise No("Authentication failed", "AUTHENTICATIONFAILED") from None
        except AuthUnavailable:
            raise No("Temporary authentication failure", "UNAVAILABLE") from None
        self._login(principal)

    def _login(self, principal: Principal) -> None:
        if principal.mailbox_id is None:
            raise No("Authentication failed", "AUTHENTICATIONFAILED")
        lease = self.ctx.users.acquire(principal.mailbox_id,
                                       self.policy.max_connections_per_user)
        if lease is None:
            log.info("imap %s: too many connections for mailbox %d",
                     self.info.connection_id, principal.mailbox_id)
            raise No("Too many connections for this user", "LIMIT")
        self.lease = lease
        self.principal = principal
        self.conn.authenticated = True
        self.state = State.AUTHENTICATED
        log.info("imap %s: logged in mailbox %d", self.info.connection_id,
                 principal.mailbox_id)

    # -- IDLE (RFC 2177) ----------------------------------------------------------------

    async def do_idle(self, tag: str, cur: Cursor, uid: bool) -> str:
        cur.end()
        await self.sync(allow_expunge=True)
        await self.conn.send(b"+ idling\r\n")
        reader = asyncio.ensure_future(self.conn.read_line())
        try:
            async with asyncio.timeout(self.policy.authenticated_connection_timeout):
                while True:
                    if self.selected is None:
                        await asyncio.wait({reader})
                    else:
                        waiter = asyncio.ensure_future(self.store.changes.wait(
                            self.mailbox_id, self.selected.cursor, 3600))
                        done, _ = await asyncio.wait({reader, waiter},
                                                     return_when=asyncio.FIRST_COMPLETED)
                        if waiter in done:
                            await self.absorb(waiter.result(), allow_expunge=True)
                            await self.conn.flush()
                        else:
                            waiter.cancel()
                            with contextlib.suppress(asyncio.CancelledError):
                                await waiter
                    if reader.done():
                        break
        except TimeoutError:
            raise Bye("Autologout; idle for too long") from None
        finally:
            if not reader.done():
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                    await reader
        line = reader.result()
        if line.upper() != b"DONE":
            raise Bad("Expected DONE")
        return "IDLE terminated"

