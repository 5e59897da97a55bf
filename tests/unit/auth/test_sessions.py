"""Forms sessions: FormsSessionService over the real store (both engines).

The password check is a stand-in (the AuthService has its own tests); everything about
sessions - ids, hashing, timeouts, logoff, credential changes, CSRF tokens, limits -
runs against real rows.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from auth.errors import AuthenticationFailed, AuthUnavailable
from auth.principal import Principal
from auth.sessions import (
    CsrfError,
    FormsSessionService,
    SessionPolicy,
    check_login_csrf,
    check_session_csrf,
    csrf_token_for,
    login_csrf_token,
    new_token,
    session_key,
    well_formed,
)
from gateway.errors import StoreUnavailable

ALICE = "alice@example.test"


class StubAuth:
    """Accepts password "right" for the mailboxes it knows; counts calls."""

    def __init__(self) -> None:
        self.principals: dict[str, Principal] = {}
        self.calls: list[tuple[str, str, str]] = []

    async def authenticate(self, credential: Any, *, protocol: str, mechanism: str,
                           source_ip: str) -> Principal:
        self.calls.append((credential.login, protocol, mechanism))
        principal = self.principals.get(credential.login)
        if principal is None or credential.password != "right":
            raise AuthenticationFailed()
        return principal


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def env(store: Any) -> Any:
    await store.org.create_accepted_domain("example", "example.test")
    mailbox = await store.org.create_mailbox(name="alice", primary_smtp_address=ALICE)
    auth = StubAuth()
    auth.principals[ALICE] = Principal.for_mailbox(
        mailbox_id=mailbox.id, name="EXAMPLE\\alice", login_name=ALICE,
        primary_smtp_address=ALICE, display_name="Alice",
        extra_groups=frozenset({"CN=Staff"}))
    clock = Clock()
    service = FormsSessionService(auth, store.sessions, clock=clock, policy=SessionPolicy(
        idle_timeout=600, absolute_timeout=3600, touch_interval=60, max_per_mailbox=3,
        purge_interval=10_000))

    class Env:
        pass

    e = Env()
    e.store, e.mailbox, e.auth, e.clock, e.service = (  # type: ignore[attr-defined]
        store, mailbox, auth, clock, service)
    return e


async def login(env: Any, password: str = "right") -> Any:
    nonce = new_token()
    return await env.service.login(ALICE, password, nonce=nonce,
                                   csrf_token=login_csrf_token(nonce),
                                   source_ip="192.0.2.1", user_agent="pytest")


def test_tokens() -> None:
    a, b = new_token(), new_token()
    assert a != b and well_formed(a) and len(a) == 43  # 256 bits, base64url
    assert not well_formed(a[:-1]) and not well_formed(a + "=") and not well_formed(None)
    assert not well_formed(a[:-1] + "\n")
    assert session_key(a) == hashlib.sha256(a.encode()).hexdigest()
    assert check_login_csrf(a, login_csrf_token(a))
    assert not check_login_csrf(a, login_csrf_token(b))
    assert not check_login_csrf("short", login_csrf_token("short"))
    assert not check_login_csrf(a, None) and not check_login_csrf(a, "ü")
    assert csrf_token_for(a) != login_csrf_token(a)  # purposes never collide


async def test_login_needs_the_login_csrf_token_before_any_password_check(
        env: Any) -> None:
    nonce = new_token()
    for token in (None, "", login_csrf_token(new_token())):
        with pytest.raises(CsrfError):
            await env.service.login(ALICE, "right", nonce=nonce, csrf_token=token,
                                    source_ip="192.0.2.1")
    with pytest.raises(CsrfError):
        await env.service.login(ALICE, "right", nonce=None,
                                csrf_token=login_csrf_token(nonce), source_ip="192.0.2.1")
    assert env.auth.calls == []


async def test_login_opens_a_session_and_stores_only_the_hash(env: Any) -> None:
    session = await login(env)
    assert env.auth.calls == [(ALICE, "owa", "Forms")]
    assert well_formed(session.session_id)
    assert session.csrf_token == csrf_token_for(session.session_id)
    [row] = await env.store.sessions.list_for_mailbox(env.mailbox.id)
    assert row.id_hash == session_key(session.session_id) != session.session_id
    assert row.user_agent == "pytest" and row.source_ip == "192.0.2.1"
    resolved = await env.service.resolve(session.session_id)
    assert resolved is not None and resolved.principal == session.principal
    assert "CN=Staff" in resolved.principal.groups
    assert check_session_csrf(resolved, session.csrf_token)
    assert not check_session_csrf(resolved, csrf_token_for(new_token()))
    assert session.session_id not in repr(resolved)


async def test_every_login_gets_a_new_id(env: Any) -> None:
    first, second = await login(env), await login(env)
    assert first.session_id != second.session_id
    assert await env.service.resolve(first.session_id) is not None


async def test_wrong_password_opens_nothing(env: Any) -> None:
    with pytest.raises(AuthenticationFailed):
        await login(env, "wrong")
    assert await env.store.sessions.list_for_mailbox(env.mailbox.id) == []


async def test_idle_timeout_and_sliding_activity(env: Any) -> None:
    session = await login(env)
    for _ in range(3):  # activity every 400 s keeps a 600 s idle timeout alive
        env.clock.now += 400
        assert await env.service.resolve(session.session_id) is not None
    env.clock.now += 601
    assert await env.service.resolve(session.session_id) is None
    assert await env.store.sessions.list_for_mailbox(env.mailbox.id) == []


async def test_touch_is_rate_limited(env: Any) -> None:
    session = await login(env)
    env.clock.now += 30
    await env.service.resolve(session.session_id)
    [row] = await env.store.sessions.list_for_mailbox(env.mailbox.id)
    assert row.last_seen == row.created_at  # < touch_interval: not written
    env.clock.now += 40
    await env.service.resolve(session.session_id)
    [row] = await env.store.sessions.list_for_mailbox(env.mailbox.id)
    assert row.last_seen == env.clock.now


async def test_absolute_timeout_despite_activity(env: Any) -> None:
    session = await login(env)
    for _ in range(12):
        env.clock.now += 299
        assert await env.service.resolve(session.session_id) is not None
    env.clock.now += 300  # 3888 s after login > 3600
    assert await env.service.resolve(session.session_id) is None


async def test_logoff_is_server_side(env: Any) -> None:
    session = await login(env)
    assert await env.service.logoff(session.session_id)
    assert await env.service.resolve(session.session_id) is None
    assert not await env.service.logoff(session.session_id)
    assert not await env.service.logoff("garbage")


async def test_password_change_ends_sessions(env: Any) -> None:
    session = await login(env)
    await env.store.org.update_mailbox(env.mailbox.id, password_hash="$argon2id$other")
    assert await env.service.resolve(session.session_id) is None


async def test_disabling_owa_ends_sessions(env: Any) -> None:
    session = await login(env)
    await env.store.org.update_mailbox(env.mailbox.id, owa_enabled=False)
    assert await env.service.resolve(session.session_id) is None


async def test_deleting_the_mailbox_ends_sessions(env: Any) -> None:
    session = await login(env)
    await env.store.org.delete_mailbox(env.mailbox.id)
    assert await env.service.resolve(session.session_id) is None


async def test_sessions_per_mailbox_are_capped(env: Any) -> None:
    sessions = []
    for _ in range(5):
        env.clock.now += 1
        sessions.append(await login(env))
    rows = await env.store.sessions.list_for_mailbox(env.mailbox.id)
    assert len(rows) == 3
    assert await env.service.resolve(sessions[0].session_id) is None
    assert await env.service.resolve(sessions[-1].session_id) is not None


async def test_logoff_everywhere_and_purge(env: Any) -> None:
    await login(env)
    await login(env)
    assert await env.service.logoff_everywhere(env.mailbox.id) == 2
    await login(env)
    env.clock.now += 700
    assert await env.store.sessions.purge_expired(env.clock.now) == 1


async def test_malformed_ids_never_reach_the_store(env: Any) -> None:
    class Exploding:
        async def get(self, _key: str) -> None:
            raise AssertionError("store consulted")

    service = FormsSessionService(env.auth, Exploding())  # type: ignore[arg-type]
    for bad in ("", "x" * 43 + "'", "a" * 44, None, 42, "../" * 15):
        assert await service.resolve(bad) is None


async def test_store_trouble_is_unavailable_never_a_pass(env: Any) -> None:
    class Down:
        async def get(self, _key: str) -> None:
            raise StoreUnavailable("down")

        async def purge_expired(self, _now: float) -> int:
            raise StoreUnavailable("down")

    service = FormsSessionService(env.auth, Down())  # type: ignore[arg-type]
    with pytest.raises(AuthUnavailable):
        await service.resolve(new_token())


def test_policy_limits_are_checked() -> None:
    with pytest.raises(ValueError):
        SessionPolicy(idle_timeout=100, absolute_timeout=50)
    with pytest.raises(ValueError):
        SessionPolicy(idle_timeout=60, touch_interval=60)
    with pytest.raises(ValueError):
        SessionPolicy(max_per_mailbox=0)
