"""AuthService: principals, equal handling of unknown users, policy, cache, audit."""

from __future__ import annotations

import logging

import pytest

from auth.cache import CredentialCache
from auth.credentials import Credential, PasswordCredential
from auth.errors import GENERIC_FAILURE, AuthenticationFailed, AuthUnavailable
from auth.principal import ANONYMOUS, AUTHENTICATED_USERS, Principal
from auth.service import AuthService
from auth.state import MemoryThrottleState
from gateway.errors import StoreUnavailable
from tests.unit.auth.fakes import Clock, FakeDirectory

ALICE = "alice@example.test"
PW = "S3cret!pass"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def directory() -> FakeDirectory:
    d = FakeDirectory()
    d.add(ALICE, PW)
    return d


@pytest.fixture
def state() -> MemoryThrottleState:
    return MemoryThrottleState()


@pytest.fixture
def service(directory: FakeDirectory, state: MemoryThrottleState, clock: Clock) -> AuthService:
    return AuthService(directory, state, clock=clock, sleep=clock.sleep)


async def login(service: AuthService, user: str = ALICE, password: str = PW, *,
                source: str = "192.0.2.10", protocol: str = "imap",
                authzid: str | None = None) -> Principal:
    return await service.authenticate(PasswordCredential(user, password, authzid=authzid),
                                      protocol=protocol, mechanism="PLAIN",
                                      source_ip=source)


async def failure(service: AuthService, *args: object, **kwargs: object) -> str:
    with pytest.raises(AuthenticationFailed) as info:
        await login(service, *args, **kwargs)  # type: ignore[arg-type]
    return str(info.value)


def test_anonymous_principal() -> None:
    assert ANONYMOUS.name == "NT AUTHORITY\\ANONYMOUS LOGON"
    assert ANONYMOUS.is_anonymous
    assert AUTHENTICATED_USERS not in ANONYMOUS.groups


async def test_success_gives_a_mailbox_principal(service: AuthService,
                                                 state: MemoryThrottleState) -> None:
    principal = await login(service)
    assert not principal.is_anonymous
    assert principal.mailbox_id == 1
    assert principal.primary_smtp_address == ALICE
    assert principal.login_name == ALICE
    assert principal.name == "EXAMPLE\\alice"
    assert AUTHENTICATED_USERS in principal.groups
    assert [e.event for e in state.audit] == ["success"]
    assert state.audit[0].mailbox_id == 1 and state.audit[0].protocol == "imap"


async def test_unknown_user_and_wrong_password_look_alike(
        service: AuthService, directory: FakeDirectory, state: MemoryThrottleState,
        clock: Clock) -> None:
    msg_wrong = await failure(service, ALICE, "wrong", source="192.0.2.1")
    msg_unknown = await failure(service, "nobody@example.test", "wrong", source="192.0.2.2")
    assert msg_wrong == msg_unknown == GENERIC_FAILURE
    # The unknown user cost a (dummy) verification just like the wrong password did.
    assert directory.verifications == 1
    assert directory.dummy_verifications == 1
    # Same tarpit for both.
    assert clock.sleeps == [2.0, 2.0]
    # The reason is only in the audit trail.
    assert [e.reason for e in state.audit] == ["wrong password", "unknown user"]


async def test_unknown_user_locks_out_like_a_known_one(
        service: AuthService, directory: FakeDirectory, state: MemoryThrottleState,
        clock: Clock) -> None:
    """Lockout behaviour must not reveal whether an account exists."""
    for i in range(10):
        await failure(service, "nobody@example.test", f"guess{i}", source="198.51.100.1")
        await failure(service, ALICE, f"guess{i}", source="198.51.100.2")
    assert clock.sleeps[0::2] == clock.sleeps[1::2]  # same tarpit sequence for both
    assert sum(e.event == "lockout" and e.mailbox_id is None for e in state.audit) == 1
    assert sum(e.event == "lockout" and e.mailbox_id == 1 for e in state.audit) == 1
    # Both are now refused without verification, alike (even alice's right password).
    before = (directory.verifications, directory.dummy_verifications)
    await failure(service, "nobody@example.test", "x", source="198.51.100.1")
    await failure(service, ALICE, PW, source="198.51.100.2")
    assert (directory.verifications, directory.dummy_verifications) == before


async def test_malformed_login_never_reaches_the_directory(
        service: AuthService, directory: FakeDirectory, state: MemoryThrottleState) -> None:
    for bad in ["alice\r\nA2 LOGOUT", "al\x00ice", "x" * 1000]:
        assert await failure(service, bad, PW) == GENERIC_FAILURE
    assert directory.lookups == []
    assert directory.verifications == directory.dummy_verifications == 0
    assert all(e.reason.startswith("malformed login name") for e in state.audit)
    assert all("\r" not in e.login and "\x00" not in e.login for e in state.audit)


async def test_empty_and_overlong_passwords_are_refused_without_hashing(
        service: AuthService, directory: FakeDirectory) -> None:
    await failure(service, ALICE, "")
    await failure(service, ALICE, "x" * 5000)
    assert directory.verifications == directory.dummy_verifications == 0


async def test_bare_and_downlevel_names_are_passed_to_the_directory(
        directory: FakeDirectory, state: MemoryThrottleState, clock: Clock) -> None:
    service = AuthService(directory, state, default_domain="example.test", clock=clock,
                          sleep=clock.sleep)
    assert (await login(service, "alice")).mailbox_id == 1
    assert directory.lookups == ["alice"]


async def test_protocol_disabled_is_refused_but_not_counted(
        service: AuthService, directory: FakeDirectory, state: MemoryThrottleState) -> None:
    directory.set_flags(ALICE, imap_enabled=False)
    assert await failure(service, protocol="imap") == GENERIC_FAILURE
    assert (await login(service, protocol="smtp")).mailbox_id == 1
    assert await failure(service, protocol="gopher") == GENERIC_FAILURE
    assert state.audit[0].reason == "protocol imap disabled for the mailbox"
    counters = await state.get_counters(["acct:1", "acct-src:1|192.0.2.10"])
    assert counters == {}


async def test_disabled_account_refused(service: AuthService,
                                        directory: FakeDirectory) -> None:
    directory.set_flags(ALICE, enabled=False)
    assert await failure(service) == GENERIC_FAILURE


async def test_authzid_rules(service: AuthService, directory: FakeDirectory,
                             state: MemoryThrottleState) -> None:
    directory.add("bob@example.test", "bobpw")
    # RFC 4616 §2: the authzid may name the authenticated identity itself...
    assert (await login(service, authzid=ALICE)).mailbox_id == 1
    assert (await login(service, authzid="ALICE@example.test")).mailbox_id == 1
    # ...but acting as someone else is not granted, even with a correct password.
    await failure(service, authzid="bob@example.test")
    await failure(service, authzid="nobody@example.test")
    await failure(service, authzid="bad\r\nname")
    assert state.audit[-1].reason == "malformed authorization identity"
    assert state.audit[-2].reason == "authorization identity not permitted"


async def test_unsupported_credential_type(service: AuthService) -> None:
    with pytest.raises(AuthenticationFailed):
        await service.authenticate(Credential(), protocol="imap", mechanism="X",
                                   source_ip="192.0.2.1")


async def test_store_trouble_is_a_temporary_failure(service: AuthService,
                                                    directory: FakeDirectory) -> None:
    async def broken(*args: object) -> None:
        raise StoreUnavailable("down")

    directory.lookup = broken  # type: ignore[method-assign,assignment]
    with pytest.raises(AuthUnavailable):
        await login(service)


async def test_secrets_never_logged_or_audited(service: AuthService,
                                               state: MemoryThrottleState,
                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    await login(service)
    await login(service)  # cache hit path
    await failure(service, ALICE, "WrongHorseBattery")
    await failure(service, "nobody@example.test", "WrongHorseBattery")
    text = caplog.text + repr(state.audit)
    assert PW not in text and "WrongHorseBattery" not in text
    assert "auth event=failure" in caplog.text


# -- the verified-credential cache ---------------------------------------------------

async def test_cache_hit_skips_verification(service: AuthService,
                                            directory: FakeDirectory) -> None:
    await login(service)
    await login(service)
    await login(service, "ALICE@EXAMPLE.TEST")  # same account, same normalised name
    assert directory.verifications == 1
    assert service.cache.hits == 2


async def test_cache_miss_for_wrong_password(service: AuthService,
                                             directory: FakeDirectory) -> None:
    await login(service)
    await failure(service, ALICE, "wrong")
    assert directory.verifications == 2


async def test_password_change_invalidates_cache(service: AuthService,
                                                 directory: FakeDirectory) -> None:
    await login(service)
    directory.change_password(ALICE, "N3w!pass")  # credential_version 1 -> 2
    await failure(service, ALICE, PW)              # old password: verified again, fails
    assert directory.verifications == 2
    await login(service, ALICE, "N3w!pass")
    await login(service, ALICE, "N3w!pass")
    assert directory.verifications == 3


async def test_cache_expires(service: AuthService, directory: FakeDirectory,
                             clock: Clock) -> None:
    await login(service)
    clock.now += 301
    await login(service)
    assert directory.verifications == 2


async def test_cache_hit_still_checks_locks_and_policy(
        service: AuthService, directory: FakeDirectory) -> None:
    await login(service)
    directory.set_flags(ALICE, imap_enabled=False)
    await failure(service)
    assert directory.verifications == 1  # refused from the cache path, no new hash


def test_cache_is_bounded_and_holds_no_password() -> None:
    cache = CredentialCache(ttl=60, max_entries=3)
    for i in range(5):
        cache.put(f"user{i}", "Secret-Password", mailbox_id=i, credential_version=1, now=0)
    assert len(cache) == 3
    assert not cache.check("user0", "Secret-Password", mailbox_id=0, credential_version=1,
                           now=1)
    assert cache.check("user4", "Secret-Password", mailbox_id=4, credential_version=1,
                       now=1)
    assert not cache.check("user4", "other", mailbox_id=4, credential_version=1, now=1)
    assert b"Secret-Password" not in repr(cache.__dict__).encode()


def test_cache_discard_mailbox() -> None:
    cache = CredentialCache()
    cache.put("a", "p", mailbox_id=1, credential_version=1, now=0)
    cache.put("b", "p", mailbox_id=2, credential_version=1, now=0)
    cache.discard_mailbox(1)
    assert len(cache) == 1


# -- end to end: a mechanism feeding the service -------------------------------------

async def test_sasl_plain_and_basic_into_the_service(service: AuthService) -> None:
    import base64

    from auth.mechanisms import (
        Authenticate,
        SaslExchange,
        SendChallenge,
        parse_basic_authorization,
    )

    exchange = SaslExchange.create("LOGIN")
    step = exchange.begin(None)
    for answer in (ALICE, PW):
        assert isinstance(step, SendChallenge)
        step = exchange.feed(base64.b64encode(answer.encode()))
    assert isinstance(step, Authenticate)
    principal = await service.authenticate(step.credential, protocol="smtp",
                                           mechanism="LOGIN", source_ip="192.0.2.1")
    assert principal.mailbox_id == 1

    header = "Basic " + base64.b64encode(f"{ALICE}:{PW}".encode()).decode()
    principal = await service.authenticate(parse_basic_authorization(header),
                                           protocol="activesync", mechanism="Basic",
                                           source_ip="192.0.2.1")
    assert principal.mailbox_id == 1


def test_protocol_allowed_fails_closed() -> None:
    from auth.policy import protocol_allowed
    from tests.unit.auth.fakes import FakeMailbox

    mb = FakeMailbox(id=1, name="a", primary_smtp_address="a@x.test",
                     user_principal_name="a@x.test", sam_account_name="a",
                     password_hash=None, pop_enabled=False, owa_enabled=False)
    assert protocol_allowed(mb, "imap") and protocol_allowed(mb, "smtp")
    assert protocol_allowed(mb, "activesync")
    assert not protocol_allowed(mb, "pop3") and not protocol_allowed(mb, "owa")
    assert not protocol_allowed(mb, "pop") and not protocol_allowed(mb, "")
