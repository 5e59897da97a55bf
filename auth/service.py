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
import os
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import NoReturn

from auth.cache import CredentialCache
from auth.certificates import CertificateCredential, CertificateMapper
from auth.credentials import Credential, NtlmCredential, PasswordCredential
from auth.directory import Account, Directory
from auth.errors import AuthenticationFailed, AuthUnavailable, LoginNameError
from auth.names import LoginName, parse_login
from auth.ntlm.verify import verify_ntlmv2
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
        # Client-certificate mapping (auth.certificates); set by the composition root
        # when client certificates are configured, else certificates are refused.
        self.certificates: CertificateMapper | None = None
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
        try:
            if isinstance(credential, PasswordCredential):
                return await self._password(credential, protocol, mechanism, source_ip)
            if isinstance(credential, NtlmCredential):
                return await self._ntlm(credential, protocol, mechanism, source_ip)
            if isinstance(credential, CertificateCredential):
                return await self._certificate(credential, protocol, mechanism, source_ip)
            await self._audit("failure", protocol, mechanism, "", None, source_ip,
                              "unsupported credential type")
            raise AuthenticationFailed()
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
        keys = self._keys(login, account, source)
        async with self._pair_lock(keys):
            return await self._attempt(cred, login, account, keys, protocol, mechanism,
                                       source_ip)

    @staticmethod
    def _keys(login: LoginName, account: Account | None, source: str) -> ThrottleKeys:
        # An unknown name is keyed by its user part alone, so that "bob@domain",
        # "DOMAIN\\bob" and "bob" share one counter as they would for a real account,
        # and lockout behaviour does not reveal which names exist.
        return ThrottleKeys(
            account=str(account.mailbox_id) if account else unknown_account_key(
                login.user.casefold()),
            source=source)

    def _pair_lock(self, keys: ThrottleKeys) -> asyncio.Lock:
        lock = self._pair_locks.get(keys.pair)
        if lock is None:
            lock = asyncio.Lock()
            self._pair_locks[keys.pair] = lock
        return lock

    async def _refuse_before_lookup(self, source: str, now: float, protocol: str,
                                    mechanism: str, login: str, source_ip: str,
                                    reason: str) -> NoReturn:
        """A failure that involved no guess at an account: counted against the source."""
        keys = ThrottleKeys(account="-", source=source)
        prior = await self.state.get_counters([keys.src])
        outcome = await self.throttle.record_refusal(keys, now, prior)
        await self._fail(outcome, protocol, mechanism, login, None, source_ip, reason)

    async def _ntlm(self, cred: NtlmCredential, protocol: str, mechanism: str,
                    source_ip: str) -> Principal:
        """NTLM: the same steps as a password (docs/authentication.md, "What
        authenticate does"), with the NTLMv2 proof checked against the account's NT
        hash instead of a password hash. NTLM responses are never cached (each is
        unique) nor recognised as repeats (they differ on every attempt)."""
        now = self._clock()
        source = normalise_source(source_ip)
        if cred.exchange.authenticate.anonymous:
            await self._refuse_before_lookup(source, now, protocol, mechanism, "",
                                             source_ip, "anonymous NTLM refused")
        try:
            login = parse_login(cred.login, default_domain=self.default_domain)
        except LoginNameError as exc:
            await self._refuse_before_lookup(source, now, protocol, mechanism, cred.login,
                                             source_ip, f"malformed login name: {exc}")
        account = await self.directory.lookup(login)
        keys = self._keys(login, account, source)
        async with self._pair_lock(keys):
            verdict = await self.throttle.check(keys, self._clock())
            mailbox_id = account.mailbox_id if account else None
            if verdict.locked is not None:
                outcome = FailureOutcome(
                    delay=self.throttle.delay_for(verdict.counters, keys), counted=False,
                    new_locks=())
                await self._fail(outcome, protocol, mechanism, login.raw, mailbox_id,
                                 source_ip, verdict.locked)
            nt_hash = await self._nt_hash(account) if account is not None else None
            # Unknown users and accounts without NTLM do the same HMAC work against a
            # random key, so the reply does not tell them apart.
            result = verify_ntlmv2(cred.exchange, nt_hash or os.urandom(16),
                                   now=self._clock())
            if account is None or nt_hash is None or not result.ok:
                reason = ("unknown user" if account is None
                          else "NTLM not enabled for the mailbox" if nt_hash is None
                          else result.reason)
                outcome = await self.throttle.record_failure(keys, "", self._clock(),
                                                             verdict.counters)
                await self._fail(outcome, protocol, mechanism, login.raw, mailbox_id,
                                 source_ip, reason)
            refusal = await self._refusal_for_valid(account, None, protocol)
            if refusal is not None:
                await self._refuse_valid(keys, protocol, mechanism, login, account,
                                         source_ip, refusal, verdict.counters)
            await self.throttle.record_success(keys, self._clock())
            cred.outcome.session_key = result.session_key
            await self._audit("success", protocol, mechanism, login.raw,
                              account.mailbox_id, source_ip, "")
            return self._principal(account)

    async def _certificate(self, cred: CertificateCredential, protocol: str,
                           mechanism: str, source_ip: str) -> Principal:
        """A client certificate the TLS layer verified (docs/client-certificates.md):
        mapped to a mailbox by ``self.certificates``, then the same lockout check,
        per-protocol policy, authzid rule (RFC 4422 appendix A: empty or the mapped
        identity) and audit as a password. Possessing the key is the proof, so there
        is nothing to guess: refusals are tarpitted and audited but never counted (a
        device with an unmapped certificate behind a shared address must not lock
        that address out)."""
        source = normalise_source(source_ip)
        if self.certificates is None:
            await self._refuse_uncounted(source, protocol, mechanism, "", source_ip,
                                         "client certificates not enabled")
        match = await self.certificates.map(cred.certificate)
        if match.login is None:
            await self._refuse_uncounted(source, protocol, mechanism, match.subject,
                                         source_ip, match.reason)
        try:
            login = parse_login(match.login, default_domain=self.default_domain)
        except LoginNameError as exc:
            await self._refuse_uncounted(source, protocol, mechanism, match.login,
                                         source_ip, f"mapped login name: {exc}")
        account = await self.directory.lookup(login)
        if account is None or account.mailbox_id != match.mailbox_id:
            await self._refuse_uncounted(source, protocol, mechanism, match.login,
                                         source_ip, "mapped mailbox not in the directory")
        keys = self._keys(login, account, source)
        async with self._pair_lock(keys):
            verdict = await self.throttle.check(keys, self._clock())
            if verdict.locked is not None:
                outcome = FailureOutcome(
                    delay=self.throttle.delay_for(verdict.counters, keys), counted=False,
                    new_locks=())
                await self._fail(outcome, protocol, mechanism, login.raw,
                                 account.mailbox_id, source_ip, verdict.locked)
            refusal = await self._refusal_for_valid(account, cred.authzid, protocol)
            if refusal is not None:
                await self._refuse_valid(keys, protocol, mechanism, login, account,
                                         source_ip, refusal, verdict.counters)
            await self.throttle.record_success(keys, self._clock())
            await self._audit("success", protocol, mechanism, login.raw,
                              account.mailbox_id, source_ip,
                              f"certificate {match.how}: {match.subject}"[:240])
            return self._principal(account)

    async def _refuse_uncounted(self, source: str, protocol: str, mechanism: str,
                                login: str, source_ip: str, reason: str) -> NoReturn:
        """A refusal that is not a guess: audited and tarpitted, not counted."""
        keys = ThrottleKeys(account="-", source=source)
        prior = await self.state.get_counters([keys.src])
        outcome = FailureOutcome(delay=self.throttle.delay_for(prior, keys), counted=False,
                                 new_locks=())
        await self._fail(outcome, protocol, mechanism, login, None, source_ip, reason)

    async def _nt_hash(self, account: Account) -> bytes | None:
        """The account's NT hash when its directory keeps one and NTLM is enabled."""
        lookup = getattr(self.directory, "lookup_nt_hash", None)
        if lookup is None:
            return None
        value = await lookup(account)
        return value if isinstance(value, bytes) and len(value) == 16 else None

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
            reason = await self._refusal_for_valid(account, cred.authzid, protocol)
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

        refusal = await self._refusal_for_valid(account, cred.authzid, protocol)
        if refusal is not None:
            await self._refuse_valid(keys, protocol, mechanism, login, account, source_ip,
                                     refusal, verdict.counters)
        await self.throttle.record_success(keys, self._clock())
        self.cache.put(cache_key, cred.password, mailbox_id=account.mailbox_id,
                       credential_version=version, now=now)
        await self._audit("success", protocol, mechanism, login.raw, account.mailbox_id,
                          source_ip, "")
        return self._principal(account)

    async def _refusal_for_valid(self, account: Account, authzid: str | None,
                                 protocol: str) -> str | None:
        """Why a correct password (or NTLM proof) is still refused, or None."""
        if not account.enabled:
            return "account disabled"
        if not protocol_allowed(account, protocol):
            return f"protocol {protocol} disabled for the mailbox"
        if authzid:
            # RFC 4616 §2: an authzid other than the authcid's own identity would be
            # proxy authorisation, which nobody is granted (yet).
            try:
                target_login = parse_login(authzid, default_domain=self.default_domain)
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
            display_name=account.display_name, extra_groups=account.groups)
