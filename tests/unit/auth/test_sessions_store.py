"""``store.sessions`` directly (both engines): validation, limits, and two nodes
sharing sessions through one store."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from auth.principal import Principal
from auth.sessions import FormsSessionService, login_csrf_token, new_token
from gateway.errors import NotFound, ValidationError
from gateway.store import open_store

KEY = hashlib.sha256(b"x").hexdigest()


@pytest.fixture
async def mailbox_id(store: Any) -> int:
    await store.org.create_accepted_domain("example", "example.test")
    mb = await store.org.create_mailbox(name="alice", primary_smtp_address="a@example.test")
    return int(mb.id)


def args(mailbox_id: int, **over: Any) -> dict[str, Any]:
    base: dict[str, Any] = dict(mailbox_id=mailbox_id, principal={"name": "a"},
                                protocol="owa", now=1000.0, idle_timeout=60,
                                absolute_timeout=600)
    base.update(over)
    return base


async def test_create_get_touch_delete(store: Any, mailbox_id: int) -> None:
    version = await store.sessions.create(KEY, **args(mailbox_id), source_ip="192.0.2.1",
                                          user_agent="UA\x00\n" + "u" * 400)
    row = await store.sessions.get(KEY)
    assert row.credential_version == version == row.mailbox_credential_version
    assert (row.created_at, row.last_seen, row.expires_at) == (1000.0, 1000.0, 1600.0)
    assert row.user_agent.startswith("UA??") and len(row.user_agent) == 256
    assert row.mailbox_owa_enabled and row.principal == {"name": "a"}
    await store.sessions.touch(KEY, 1030.0)
    await store.sessions.touch(KEY, 1010.0)  # never backwards
    assert (await store.sessions.get(KEY)).last_seen == 1030.0
    assert await store.sessions.purge_expired(1089.0) == 0
    assert await store.sessions.purge_expired(1090.0) == 1  # idle: 1030 + 60
    assert await store.sessions.get(KEY) is None
    assert not await store.sessions.delete(KEY)


@pytest.mark.parametrize("bad", [
    {"id_hash": "X" * 64}, {"id_hash": KEY[:-1]}, {"idle_timeout": 0},
    {"idle_timeout": 700}, {"max_per_mailbox": 0}, {"max_per_mailbox": 5000},
    {"protocol": ""}, {"principal": {"blob": "x" * 20_000}},
])
async def test_create_validates(store: Any, mailbox_id: int, bad: dict[str, Any]) -> None:
    bad = dict(bad)  # parametrised values are shared between the engines
    key = bad.pop("id_hash", KEY)
    with pytest.raises(ValidationError):
        await store.sessions.create(key, **args(mailbox_id, **bad))


async def test_unknown_mailbox_and_bad_keys(store: Any, mailbox_id: int) -> None:
    with pytest.raises(NotFound):
        await store.sessions.create(KEY, **args(mailbox_id + 1000))
    for method in (store.sessions.get, store.sessions.delete):
        with pytest.raises(ValidationError):
            await method("'; DROP TABLE web_sessions; --")


async def test_two_nodes_share_sessions(store: Any, store_url: str, mailbox_id: int) -> None:
    """A session opened on one node is seen, and ended, by another."""
    other = await open_store(store_url)
    try:
        principal = Principal.for_mailbox(mailbox_id=mailbox_id, name="alice",
                                          login_name="a@example.test",
                                          primary_smtp_address="a@example.test",
                                          display_name="Alice")

        class Auth:
            async def authenticate(self, *_a: Any, **_k: Any) -> Principal:
                return principal

        node1 = FormsSessionService(Auth(), store.sessions)
        node2 = FormsSessionService(Auth(), other.sessions)
        nonce = new_token()
        session = await node1.login("a", "b", nonce=nonce,
                                    csrf_token=login_csrf_token(nonce), source_ip="::1")
        seen = await node2.resolve(session.session_id)
        assert seen is not None and seen.principal == principal
        assert await node2.logoff(session.session_id)
        assert await node1.resolve(session.session_id) is None
    finally:
        await other.close()
