"""Forms sessions: a password login that becomes a server-side session (web mail).

Role: the forms-based authentication mechanism of the shared layer (docs/sessions.md),
protocol-neutral: it knows nothing of HTTP (``gateway.http.forms`` puts it on the
wire). A login goes through the ``AuthService`` like any password (lockout, cache,
audit, per-protocol policy); success creates a session in the store, shared by every
node, and hands back a fresh random session id.

Invariants (OWASP ASVS V3, security.md A4):
- a session id is 256 bits from ``secrets`` (``SESSION_ID_BYTES``), new at every login
  (no id from before the login is ever promoted: no fixation); only its SHA-256 is
  stored, and it never reaches a log (logs name the first 8 hex digits of the hash);
- a session ends at its idle timeout, its absolute timeout, logoff, the mailbox's
  credential version moving (password or NT hash changed, on any node), the protocol
  being disabled for the mailbox (Set-CASMailbox), or the mailbox being deleted;
  whichever comes first; an ended session's row is deleted when it is next seen;
- CSRF: every session has a synchronizer token derived from its id
  (HMAC-SHA256(id, "csrf")); the login form has its own token bound to a login nonce
  kept in a separate cookie (a pre-session that stores nothing server-side), so a
  cross-site login (login CSRF) is refused as well; tokens are compared with
  ``hmac.compare_digest``;
- store trouble never lets anyone in: ``resolve`` raises ``AuthUnavailable``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from auth.credentials import PasswordCredential
from auth.errors import AuthUnavailable
from auth.principal import Principal
from gateway.errors import GatewayError

log = logging.getLogger("auth.sessions")

#: Entropy of a session id and of a login nonce (octets; 256 bits).
SESSION_ID_BYTES = 32
_TOKEN = re.compile(r"\A[A-Za-z0-9_-]{43}\Z")  # base64url of 32 octets, unpadded
_CSRF_LABEL = b"gateway session csrf v1"
_LOGIN_CSRF_LABEL = b"gateway login csrf v1"


class CsrfError(GatewayError):
    """A state-changing request (or a login) without a valid CSRF token."""


class SessionStorage(Protocol):
    """What the service needs of ``store.sessions`` (gateway.store.sessions)."""

    async def create(self, id_hash: str, *, mailbox_id: int, principal: dict[str, Any],
                     protocol: str, now: float, idle_timeout: float,
                     absolute_timeout: float, source_ip: str = "", user_agent: str = "",
                     max_per_mailbox: int = 100) -> int: ...
    async def get(self, id_hash: str) -> Any: ...
    async def touch(self, id_hash: str, now: float) -> None: ...
    async def delete(self, id_hash: str) -> bool: ...
    async def delete_for_mailbox(self, mailbox_id: int) -> int: ...
    async def purge_expired(self, now: float) -> int: ...


class Authenticator(Protocol):
    """``auth.service.AuthService.authenticate``."""

    async def authenticate(self, credential: Any, *, protocol: str, mechanism: str,
                           source_ip: str) -> Principal: ...


@dataclass(frozen=True)
class SessionPolicy:
    """Every limit of forms sessions (seconds unless stated).

    Defaults follow Exchange's forms-based authentication for a private computer
    scaled to current guidance: 30 minutes idle, 12 hours absolute (ASVS 3.3.2 asks
    for re-authentication within 12 hours of activity for L2).
    """

    idle_timeout: float = 30 * 60
    absolute_timeout: float = 12 * 3600
    #: ``last_seen`` is written at most this often per session (the idle timeout is
    #: therefore exact to within this margin); keeps a busy session from writing on
    #: every request.
    touch_interval: float = 60.0
    #: Sessions kept per mailbox; the oldest are ended beyond it.
    max_per_mailbox: int = 100
    #: How often one process deletes expired rows (opportunistically, on use).
    purge_interval: float = 300.0

    def __post_init__(self) -> None:
        if not 0 < self.idle_timeout <= self.absolute_timeout:
            raise ValueError("0 < idle_timeout <= absolute_timeout")
        if self.touch_interval < 0 or self.touch_interval >= self.idle_timeout:
            raise ValueError("0 <= touch_interval < idle_timeout")
        if not 1 <= self.max_per_mailbox <= 1000:
            raise ValueError("max_per_mailbox is 1 to 1000")


@dataclass(frozen=True)
class Session:
    """A live session: who, its CSRF token, and when it ends."""

    session_id: str           # the cookie value (a secret; never log it)
    principal: Principal
    csrf_token: str
    mailbox_id: int
    created_at: float
    expires_at: float

    def __repr__(self) -> str:  # the id is a bearer secret
        return f"Session(mailbox_id={self.mailbox_id}, expires_at={self.expires_at:.0f})"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def new_token() -> str:
    """A fresh 256-bit random token (session id or login nonce), base64url."""
    return _b64(secrets.token_bytes(SESSION_ID_BYTES))


def well_formed(token: object) -> bool:
    """Whether ``token`` could be a token we issued (length and alphabet only)."""
    return isinstance(token, str) and bool(_TOKEN.match(token))


def session_key(session_id: str) -> str:
    """What the store keeps instead of the id: SHA-256, lower-case hex."""
    return hashlib.sha256(session_id.encode("ascii")).hexdigest()


def csrf_token_for(session_id: str) -> str:
    """The synchronizer token of a session (derivable only from the secret id)."""
    return _b64(hmac.new(session_id.encode("ascii"), _CSRF_LABEL, hashlib.sha256).digest())


def login_csrf_token(nonce: str) -> str:
    """The login form's token for a login nonce (the pre-session cookie)."""
    return _b64(hmac.new(nonce.encode("ascii"), _LOGIN_CSRF_LABEL,
                         hashlib.sha256).digest())


def _token_matches(expected: str, given: object) -> bool:
    return isinstance(given, str) and hmac.compare_digest(expected.encode("ascii"),
                                                          given.encode("ascii", "replace"))


def check_login_csrf(nonce: object, token: object) -> bool:
    """The login form's token matches the nonce cookie the same browser holds."""
    return well_formed(nonce) and _token_matches(login_csrf_token(str(nonce)), token)


def check_session_csrf(session: Session, token: object) -> bool:
    """A state-changing request carries the session's token."""
    return bool(session.csrf_token) and _token_matches(session.csrf_token, token)


def principal_snapshot(principal: Principal) -> dict[str, Any]:
    return {"name": principal.name, "groups": sorted(principal.groups),
            "mailbox_id": principal.mailbox_id,
            "primary_smtp_address": principal.primary_smtp_address,
            "display_name": principal.display_name, "login_name": principal.login_name}


def principal_from_snapshot(data: dict[str, Any]) -> Principal:
    return Principal(name=str(data["name"]), groups=frozenset(map(str, data["groups"])),
                     mailbox_id=int(data["mailbox_id"]),
                     primary_smtp_address=data.get("primary_smtp_address"),
                     display_name=str(data.get("display_name", "")),
                     login_name=str(data.get("login_name", "")))


_PROTOCOL_FLAG = {"owa": "mailbox_owa_enabled", "activesync": "mailbox_activesync_enabled"}


class FormsSessionService:
    """Logins, session lookups and logoffs for one protocol (``owa`` by default)."""

    def __init__(self, auth: Authenticator, storage: SessionStorage, *,
                 policy: SessionPolicy | None = None, protocol: str = "owa",
                 clock: Callable[[], float] = time.time) -> None:
        self._auth = auth
        self._storage = storage
        self.policy = policy or SessionPolicy()
        self.protocol = protocol
        self._clock = clock
        self._purged_at = clock()

    async def login(self, login: str, password: str, *, nonce: object, csrf_token: object,
                    source_ip: str, user_agent: str = "") -> Session:
        """Check the login form's CSRF token, authenticate, open a new session.

        Raises ``CsrfError`` (before any password check), ``AuthenticationFailed`` or
        ``AuthUnavailable``."""
        if not check_login_csrf(nonce, csrf_token):
            log.info("forms login refused: missing or wrong login CSRF token from %s",
                     source_ip)
            raise CsrfError("login form expired or forged; reload the page")
        principal = await self._auth.authenticate(
            PasswordCredential(login=login, password=password), protocol=self.protocol,
            mechanism="Forms", source_ip=source_ip)
        assert principal.mailbox_id is not None
        session_id = new_token()
        key = session_key(session_id)
        now = self._clock()
        p = self.policy
        try:
            await self._storage.create(
                key, mailbox_id=principal.mailbox_id,
                principal=principal_snapshot(principal), protocol=self.protocol, now=now,
                idle_timeout=p.idle_timeout, absolute_timeout=p.absolute_timeout,
                source_ip=source_ip, user_agent=user_agent,
                max_per_mailbox=p.max_per_mailbox)
        except GatewayError as exc:
            log.error("cannot store a new session: %s", type(exc).__name__)
            raise AuthUnavailable("sessions are temporarily unavailable") from exc
        log.info("session opened mailbox=%d session=%s source=%s", principal.mailbox_id,
                 key[:8], source_ip)
        return Session(session_id=session_id, principal=principal,
                       csrf_token=csrf_token_for(session_id),
                       mailbox_id=principal.mailbox_id, created_at=now,
                       expires_at=now + p.absolute_timeout)

    async def resolve(self, session_id: object) -> Session | None:
        """The live session ``session_id`` names, or None (ended sessions are deleted).

        Raises ``AuthUnavailable`` when the store cannot answer."""
        if not well_formed(session_id):
            return None
        sid = str(session_id)
        key = session_key(sid)
        now = self._clock()
        try:
            await self._maybe_purge(now)
            row = await self._storage.get(key)
            if row is None:
                return None
            ended = self._ended(row, now)
            if ended is not None:
                await self._storage.delete(key)
                log.info("session ended mailbox=%d session=%s reason=%s", row.mailbox_id,
                         key[:8], ended)
                return None
            if now - row.last_seen >= self.policy.touch_interval:
                await self._storage.touch(key, now)
        except GatewayError as exc:
            log.error("session lookup failed: %s", type(exc).__name__)
            raise AuthUnavailable("sessions are temporarily unavailable") from exc
        return Session(session_id=sid, principal=principal_from_snapshot(row.principal),
                       csrf_token=csrf_token_for(sid), mailbox_id=row.mailbox_id,
                       created_at=row.created_at, expires_at=row.expires_at)

    def _ended(self, row: Any, now: float) -> str | None:
        if row.protocol != self.protocol:
            return "session of another protocol"
        if now >= row.expires_at:
            return "absolute timeout"
        if now >= row.last_seen + row.idle_timeout:
            return "idle timeout"
        if row.credential_version != row.mailbox_credential_version:
            return "credentials changed"
        flag = _PROTOCOL_FLAG.get(self.protocol)
        if flag is not None and not getattr(row, flag):
            return f"protocol {self.protocol} disabled for the mailbox"
        return None

    async def logoff(self, session_id: object) -> bool:
        """End the session server-side (the cookie alone is worthless afterwards)."""
        if not well_formed(session_id):
            return False
        key = session_key(str(session_id))
        try:
            ended = await self._storage.delete(key)
        except GatewayError as exc:
            raise AuthUnavailable("sessions are temporarily unavailable") from exc
        if ended:
            log.info("session logged off session=%s", key[:8])
        return ended

    async def logoff_everywhere(self, mailbox_id: int) -> int:
        """End every session of a mailbox (e.g. after a suspected compromise)."""
        return await self._storage.delete_for_mailbox(mailbox_id)

    async def _maybe_purge(self, now: float) -> None:
        if now - self._purged_at < self.policy.purge_interval:
            return
        self._purged_at = now
        count = await self._storage.purge_expired(now)
        if count:
            log.info("purged %d expired sessions", count)
