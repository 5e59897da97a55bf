"""The AuthService: credentials in, a Principal out, for every protocol.

Role: the single place that verifies credentials against a ``Directory`` and applies
what must be the same for SMTP, IMAP, POP3, web mail and ActiveSync: login-name
syntax, throttling and lockout, the verified-credential cache, per-protocol
enablement, the audit trail and the structured log.

Invariants:
- Every refusal raises the same ``AuthenticationFailed`` with the same message: unknown
  user, wrong password, lockout, disabled account or protocol all look alike to the
  client. An unknown user costs a verification against a dummy hash, so the timing
  matches a wrong password too. The reason goes to the audit trail and the log only.
- Failure replies are delayed by the throttle's tarpit here; protocols add none.
- No secret (password, hash, digest) is logged or audited.
- Store trouble raises ``AuthUnavailable`` (a temporary failure), never lets a client in.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import NoReturn

from auth.cache import CredentialCache
from auth.credentials import Credential, PasswordCredential
from auth.directory import Account, Directory
from auth.errors import AuthenticationFailed, AuthUnavailable, LoginNameError
from auth.names import LoginName, parse_login
from auth.passwords import MAX_PASSWORD_LENGTH
from auth.policy import protocol_allowed
from auth.principal import Principal
from auth.state import AuthAuditEvent, FailureCounter, ThrottleState
from auth.throttle import (
    FailureOutcome,
    Throttle,
    ThrottleKeys,
    ThrottlePolicy,
    normalise_source,
    unknown_account_key,
)
from gateway.errors import GatewayError

log = logging.getLogger("auth")

_LOG_LOGIN_MAX = 80


def _printable_login(raw: object) -> str:
    """A login name safe for a log line or the audit trail (escaped, truncated)."""
    text = raw if isinstance(raw, str) else repr(raw)
    text = text.encode("unicode_escape").decode("ascii")
    return text if len(text) <= _LOG_LOGIN_MAX else text[:_LOG_LOGIN_MAX] + "..."


class AuthService:
    """Verifies credentials; one instance per process, shared by every protocol."""

    def __init__(self, directory: Directory, state_store: ThrottleState, *,
                 policy: ThrottlePolicy | None = None,
                 cache: CredentialCache | None = None,
                 default_domain: str | None = None,
                 clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.directory = directory
        self.state = state_store
        self.throttle = Throttle(state_store, policy)
        self.cache = cache if cache is not None else CredentialCache()
        self.default_domain = default_domain
        self._clock = clock
        self._sleep = sleep
        # One attempt at a time per (account, source): parallel guesses from one
        # source cannot all pass the lockout check before the first is counted.
        self._pair_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = \
            weakref.WeakValueDictionary()

    async def authenticate(self, credential: Credential, *, protocol: str, mechanism: str,
                           source_ip: str) -> Principal:
        """Verify ``credential`` for ``protocol`` from ``source_ip``.

        Returns the authenticated Principal; raises ``AuthenticationFailed`` (whatever
        the cause) or ``AuthUnavailable`` (try again later).
        """
        if not isinstance(credential, PasswordCredential):
            await self._audit("failure", protocol, mechanism, "", None, source_ip,
                              "unsupported credential type")
            raise AuthenticationFailed()
        try:
            return await self._password(credential, protocol, mechanism, source_ip)
        except GatewayError as exc:
            if isinstance(exc, (AuthenticationFailed, AuthUnavailable)):
                raise
            log.error("auth unavailable: %s during %s login from %s",
                      type(exc).__name__, protocol, source_ip)
            raise AuthUnavailable("authentication is temporarily unavailable") from exc

    async def _password(self, cred: PasswordCredential, protocol: str, mechanism: str,
                        source_ip: str) -> Principal:
        now = self._clock()
        source = normalise_source(source_ip)
        try:
            login = parse_login(cred.login, default_domain=self.default_domain)
        except LoginNameError as exc:
            keys = ThrottleKeys(account="-", source=source)
            prior = await self.state.get_counters([keys.src])
            outcome = await self.throttle.record_refusal(keys, now, prior)
            await self._fail(outcome, protocol, mechanism, cred.login, None, source_ip,
                             f"malformed login name: {exc}")
        password = cred.password
        if not password or len(password) > MAX_PASSWORD_LENGTH:
            keys = ThrottleKeys(account="-", source=source)
            prior = await self.state.get_counters([keys.src])
            outcome = await self.throttle.record_refusal(keys, now, prior)
            await self._fail(outcome, protocol, mechanism, login.raw, None, source_ip,
                             "empty password" if not password else "password too long")

        account = await self.directory.lookup(login)
        # An unknown name is keyed by its user part alone, so that "bob@domain",
        # "DOMAIN\\bob" and "bob" share one counter as they would for a real account,
        # and lockout behaviour does not reveal which names exist.
        keys = ThrottleKeys(
            account=str(account.mailbox_id) if account else unknown_account_key(
                login.user.casefold()),
            source=source)
        lock = self._pair_locks.get(keys.pair)
        if lock is None:
            lock = asyncio.Lock()
            self._pair_locks[keys.pair] = lock
        async with lock:
            return await self._attempt(cred, login, account, keys, protocol, mechanism,
                                       source_ip)

    async def _attempt(self, cred: PasswordCredential, login: LoginName,
                       account: Account | None, keys: ThrottleKeys, protocol: str,
                       mechanism: str, source_ip: str) -> Principal:
        now = self._clock()
        mailbox_id = account.mailbox_id if account else None
        verdict = await self.throttle.check(keys, now)
        if verdict.locked is not None:
            outcome = FailureOutcome(delay=self.throttle.delay_for(verdict.counters, keys),
                                     counted=False, new_locks=())
            await self._fail(outcome, protocol, mechanism, login.raw, mailbox_id,
                             source_ip, verdict.locked)

        cache_key = login.normalised
        if account is not None and self.cache.check(
                cache_key, cred.password, mailbox_id=account.mailbox_id,
                credential_version=account.credential_version, now=now):
            reason = await self._refusal_for_valid_password(account, cred, protocol)
            if reason is None:
                log.debug("auth outcome=success cached=1 protocol=%s mailbox=%d source=%s",
                          protocol, account.mailbox_id, source_ip)
                return self._principal(account)
            await self._refuse_valid(keys, protocol, mechanism, login, account, source_ip,
                                     reason, verdict.counters)

        version = account.credential_version if account else 0
        if account is None:
            await self.directory.dummy_verify(cred.password)
            ok, reason = False, "unknown user"
        else:
            check = await self.directory.verify_password(account, cred.password)
            ok = check.ok
            version = check.credential_version or version
            reason = "wrong password" if account.has_password else "no password set"
        if not ok or account is None:
            outcome = await self.throttle.record_failure(keys, cred.password, self._clock(),
                                                         verdict.counters)
            if not outcome.counted:
                reason += " (repeated, not counted)"
            await self._fail(outcome, protocol, mechanism, login.raw, mailbox_id, source_ip,
                             reason)

        refusal = await self._refusal_for_valid_password(account, cred, protocol)
        if refusal is not None:
            await self._refuse_valid(keys, protocol, mechanism, login, account, source_ip,
                                     refusal, verdict.counters)
        await self.throttle.record_success(keys, self._clock())
        self.cache.put(cache_key, cred.password, mailbox_id=account.mailbox_id,
                       credential_version=version, now=now)
        await self._audit("success", protocol, mechanism, login.raw, account.mailbox_id,
                          source_ip, "")
        return self._principal(account)

    async def _refusal_for_valid_password(self, account: Account, cred: PasswordCredential,
                                          protocol: str) -> str | None:
        """Why a correct password is still refused, or None."""
        if not account.enabled:
            return "account disabled"
        if not protocol_allowed(account, protocol):
            return f"protocol {protocol} disabled for the mailbox"
        if cred.authzid:
            # RFC 4616 §2: an authzid other than the authcid's own identity would be
            # proxy authorisation, which nobody is granted (yet).
            try:
                target_login = parse_login(cred.authzid, default_domain=self.default_domain)
            except LoginNameError:
                return "malformed authorization identity"
            target = await self.directory.lookup(target_login)
            if target is None or target.mailbox_id != account.mailbox_id:
                return "authorization identity not permitted"
        return None

    async def _refuse_valid(self, keys: ThrottleKeys, protocol: str, mechanism: str,
                            login: LoginName, account: Account, source_ip: str, reason: str,
                            counters: dict[str, FailureCounter]) -> NoReturn:
        """Refuse a correct password (disabled, protocol off, authzid): not a guess, so
        not counted, but replied to like any failure."""
        outcome = FailureOutcome(delay=self.throttle.delay_for(counters, keys),
                                 counted=False, new_locks=())
        await self._fail(outcome, protocol, mechanism, login.raw, account.mailbox_id,
                         source_ip, reason)

    async def _fail(self, outcome: FailureOutcome, protocol: str, mechanism: str,
                    login: str, mailbox_id: int | None, source_ip: str,
                    reason: str) -> NoReturn:
        """Audit, log, tarpit, raise."""
        for key in outcome.new_locks:
            await self._audit("lockout", protocol, mechanism, login, mailbox_id,
                              source_ip, f"locked {key.split(':', 1)[0]}")
        await self._audit("failure", protocol, mechanism, login, mailbox_id, source_ip,
                          reason)
        await self._sleep(outcome.delay)
        raise AuthenticationFailed()

    async def _audit(self, event: str, protocol: str, mechanism: str, login: str,
                     mailbox_id: int | None, source_ip: str, reason: str) -> None:
        safe_login = _printable_login(login)
        outcome = "success" if event == "success" else "failure"
        log.info("auth event=%s protocol=%s mechanism=%s login=%s mailbox=%s source=%s "
                 "reason=%r", event, protocol, mechanism, safe_login,
                 mailbox_id if mailbox_id is not None else "-", source_ip, reason)
        try:
            await self.state.append_audit(AuthAuditEvent(
                at=self._clock(), event=event, protocol=protocol, mechanism=mechanism,
                login=safe_login, mailbox_id=mailbox_id, source_ip=source_ip[:64],
                outcome=outcome, reason=reason))
        except GatewayError as exc:
            log.error("could not write the auth audit event (%s)", type(exc).__name__)

    @staticmethod
    def _principal(account: Account) -> Principal:
        return Principal.for_mailbox(
            mailbox_id=account.mailbox_id, name=account.name,
            login_name=account.user_principal_name,
            primary_smtp_address=account.primary_smtp_address,
            display_name=account.display_name)
