"""The AuthService against the real store (both engines): local directory, shared
lockout counters, audit trail and cache invalidation through credential_version."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from passlib.context import CryptContext

from auth.credentials import PasswordCredential
from auth.directories.local import LocalDirectory
from auth.errors import GENERIC_FAILURE, AuthenticationFailed
from auth.hashing import HashRunner
from auth.principal import AUTHENTICATED_USERS, Principal
from auth.service import AuthService

# Cheap parameters keep the suite fast; the first successful login upgrades the hash.
CHEAP = CryptContext(schemes=["argon2"], argon2__type="ID", argon2__memory_cost=256,
                     argon2__rounds=1, argon2__parallelism=1)
PW = "S3cret!pass"
HOME = "192.0.2.10"
ATTACKER = "203.0.113.66"


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
async def org(store: Any) -> AsyncIterator[Any]:
    await store.org.create_accepted_domain("example", "example.test")
    await store.org.set_settings("organization", {"name": "Example",
                                                  "netbios_domain": "EXAMPLE"})
    await store.org.create_mailbox(name="alice", primary_smtp_address="alice@example.test",
                                   display_name="Alice Liddell",
                                   password_hash=CHEAP.hash(PW))
    yield store


@pytest.fixture
def runner() -> Any:
    r = HashRunner(max_workers=2)
    yield r
    r.close()


def make_service(store: Any, runner: HashRunner, sleeps: Sleeps | None = None) -> AuthService:
    return AuthService(LocalDirectory(store.org, runner, settings_ttl=0), store.auth_state,
                       sleep=sleeps or Sleeps())


async def login(service: AuthService, user: str, password: str, *, source: str = HOME,
                protocol: str = "imap") -> Principal:
    return await service.authenticate(PasswordCredential(user, password), protocol=protocol,
                                      mechanism="PLAIN", source_ip=source)


async def test_login_forms_and_principal(org: Any, runner: HashRunner) -> None:
    service = make_service(org, runner)
    for name in ("alice@example.test", "EXAMPLE\\alice", "alice"):
        principal = await login(service, name, PW)
        assert principal.primary_smtp_address == "alice@example.test"
        assert principal.name == "EXAMPLE\\alice"
        assert principal.display_name == "Alice Liddell"
        assert AUTHENTICATED_USERS in principal.groups
    audit = await org.auth_state.list_audit()
    assert audit and audit[-1].event == "success" and audit[-1].mailbox_id is not None
    # The first success upgraded the cheap hash to the current argon2id parameters.
    mailbox = await org.org.get_mailbox("alice")
    assert mailbox.password_hash != CHEAP.hash(PW) and mailbox.credential_version == 2


async def test_unknown_user_and_wrong_password_alike(org: Any, runner: HashRunner) -> None:
    sleeps = Sleeps()
    service = make_service(org, runner, sleeps)
    messages = []
    for user, source in (("alice@example.test", "192.0.2.1"),
                         ("nobody@example.test", "192.0.2.2")):
        with pytest.raises(AuthenticationFailed) as info:
            await login(service, user, "wrong", source=source)
        messages.append(str(info.value))
    assert messages == [GENERIC_FAILURE, GENERIC_FAILURE]
    assert sleeps.calls == [2.0, 2.0]
    assert runner.dummy_verifications == 1
    reasons = [e.reason for e in await org.auth_state.list_audit()]
    assert sorted(reasons) == ["unknown user", "wrong password"]


async def test_lockout_is_shared_between_processes_and_keyed_by_source(
        org: Any, runner: HashRunner) -> None:
    first = make_service(org, runner)
    for i in range(10):
        with pytest.raises(AuthenticationFailed):
            await login(first, "alice@example.test", f"guess{i}", source=ATTACKER)
    # Another process (fresh memory, same store) sees the lock...
    second = make_service(org, runner)
    with pytest.raises(AuthenticationFailed):
        await login(second, "alice@example.test", PW, source=ATTACKER)
    # ...which binds the attacker's address only.
    assert (await login(second, "alice@example.test", PW, source=HOME)).mailbox_id
    events = [e.event for e in await org.auth_state.list_audit(limit=50)]
    assert "lockout" in events


async def test_password_change_invalidates_the_cache(org: Any, runner: HashRunner) -> None:
    service = make_service(org, runner)
    await login(service, "alice", PW)          # verifies, upgrades the hash: version 2
    await login(service, "alice", PW)          # cached at version 2: no argon2
    assert service.cache.hits == 1
    mailbox = await org.org.get_mailbox("alice")
    await org.org.update_mailbox(mailbox.id, password_hash=CHEAP.hash("N3w!pass"))
    with pytest.raises(AuthenticationFailed):
        await login(service, "alice", PW)      # the cached old password no longer works
    assert service.cache.hits == 1
    assert (await login(service, "alice", "N3w!pass")).mailbox_id == mailbox.id


async def test_protocol_enablement_from_the_store(org: Any, runner: HashRunner) -> None:
    service = make_service(org, runner)
    mailbox = await org.org.get_mailbox("alice")
    await org.org.update_mailbox(mailbox.id, pop_enabled=False)
    with pytest.raises(AuthenticationFailed):
        await login(service, "alice", PW, protocol="pop3")
    assert (await login(service, "alice", PW, protocol="imap")).mailbox_id == mailbox.id
