"""The local directory: name resolution over store.org and argon2 verification."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from passlib.context import CryptContext

from auth.directories.local import LocalDirectory
from auth.hashing import HashRunner
from auth.names import parse_login
from tests.unit.auth.fakes import FakeDomain, FakeMailbox, FakeOrg

CHEAP = CryptContext(schemes=["argon2"], argon2__type="ID", argon2__memory_cost=256,
                     argon2__rounds=1, argon2__parallelism=1)


@pytest.fixture
def org() -> FakeOrg:
    org = FakeOrg()
    org.domains = [FakeDomain("example", "example.test", True),
                   FakeDomain("other", "other.test", False)]
    org.settings["organization"] = {"netbios_domain": "CONTOSO"}
    org.add(FakeMailbox(id=1, name="alice", primary_smtp_address="alice@example.test",
                        user_principal_name="alice.upn@example.test",
                        sam_account_name="alice", display_name="Alice",
                        email_addresses=("al@other.test",),
                        password_hash=CHEAP.hash("pw")))
    org.add(FakeMailbox(id=2, name="nopw", primary_smtp_address="nopw@example.test",
                        user_principal_name="nopw@example.test", sam_account_name="nopw",
                        password_hash=None))
    return org


@pytest.fixture
def runner() -> Iterator[HashRunner]:
    r = HashRunner(max_workers=2)
    yield r
    r.close()


@pytest.fixture
def directory(org: FakeOrg, runner: HashRunner) -> LocalDirectory:
    return LocalDirectory(org, runner)


@pytest.mark.parametrize("name", [
    "alice@example.test", "ALICE@Example.Test", "alice.upn@example.test", "al@other.test",
    "CONTOSO\\alice", "contoso\\ALICE", "example.test\\alice", "alice",
])
async def test_lookup_forms(directory: LocalDirectory, name: str) -> None:
    account = await directory.lookup(parse_login(name))
    assert account is not None and account.mailbox_id == 1
    assert account.name == "CONTOSO\\alice"
    assert account.user_principal_name == "alice.upn@example.test"
    assert account.display_name == "Alice"
    assert "password_hash" not in repr(account) and "argon2" not in repr(account)


@pytest.mark.parametrize("name", [
    "bob@example.test", "FABRIKAM\\alice", "bob", "alice@nowhere.test",
])
async def test_lookup_unknown_or_foreign(directory: LocalDirectory, name: str) -> None:
    assert await directory.lookup(parse_login(name)) is None


async def test_bare_name_falls_back_to_default_domain_address(
        org: FakeOrg, directory: LocalDirectory) -> None:
    org.add(FakeMailbox(id=3, name="carol", primary_smtp_address="carol@example.test",
                        user_principal_name="carol@example.test",
                        sam_account_name="c.smith", password_hash=None))
    account = await directory.lookup(parse_login("carol"))
    assert account is not None and account.mailbox_id == 3


async def test_netbios_falls_back_to_first_label_of_default_domain(
        org: FakeOrg, runner: HashRunner) -> None:
    org.settings["organization"] = {}
    directory = LocalDirectory(org, runner)
    account = await directory.lookup(parse_login("EXAMPLE\\alice"))
    assert account is not None and account.name == "EXAMPLE\\alice"


async def test_settings_are_reread_after_ttl(org: FakeOrg, runner: HashRunner) -> None:
    directory = LocalDirectory(org, runner, settings_ttl=0)
    assert await directory.lookup(parse_login("CONTOSO\\alice")) is not None
    org.settings["organization"] = {"netbios_domain": "NEWNAME"}
    assert await directory.lookup(parse_login("CONTOSO\\alice")) is None
    assert await directory.lookup(parse_login("NEWNAME\\alice")) is not None


async def test_verify_and_rehash(org: FakeOrg, directory: LocalDirectory) -> None:
    account = await directory.lookup(parse_login("alice"))
    assert account is not None
    assert not (await directory.verify_password(account, "wrong")).ok
    assert org.updates == []
    check = await directory.verify_password(account, "pw")
    assert check.ok and check.credential_version == 2
    # The cheap test hash was upgraded to the current parameters (version bumped).
    assert len(org.updates) == 1 and org.updates[0][0] == 1
    assert org.mailboxes[1].credential_version == 2
    assert org.mailboxes[1].password_hash != CHEAP.hash("pw")


async def test_rehash_never_overwrites_a_changed_password(
        org: FakeOrg, directory: LocalDirectory) -> None:
    account = await directory.lookup(parse_login("alice"))
    assert account is not None
    await org.update_mailbox(1, password_hash=CHEAP.hash("new"))  # admin changes it
    org.updates.clear()
    check = await directory.verify_password(account, "pw")  # old hash, old account
    assert check.ok and check.credential_version is None
    assert org.updates == []


async def test_no_password_and_unknown_users_cost_a_dummy_verification(
        directory: LocalDirectory, runner: HashRunner) -> None:
    account = await directory.lookup(parse_login("nopw"))
    assert account is not None and not account.has_password
    assert not (await directory.verify_password(account, "anything")).ok
    await directory.dummy_verify("anything")
    assert runner.dummy_verifications == 2
    assert (await runner.dummy_hash()).startswith("$argon2id$")


async def test_warm_up_makes_the_dummy_hash_once(runner: HashRunner) -> None:
    await runner.warm_up()
    first = await runner.dummy_hash()
    await runner.warm_up()
    assert await runner.dummy_hash() == first


@pytest.mark.slow
async def test_unknown_user_costs_about_what_a_wrong_password_costs(
        org: FakeOrg, runner: HashRunner) -> None:
    """Real argon2 parameters, the fastest of a few attempts each (robust to a loaded
    machine: load only ever adds time), a generous factor-of-2 band."""
    import time

    from auth.credentials import PasswordCredential
    from auth.errors import AuthenticationFailed
    from auth.passwords import hash_password
    from auth.service import AuthService
    from auth.state import MemoryThrottleState

    await org.update_mailbox(1, password_hash=hash_password("pw"))
    await runner.warm_up()

    async def no_sleep(_: float) -> None:
        return None

    service = AuthService(LocalDirectory(org, runner), MemoryThrottleState(),
                          sleep=no_sleep)

    async def fastest(user: str) -> float:
        times = []
        for i in range(6):
            started = time.perf_counter()
            with pytest.raises(AuthenticationFailed):
                await service.authenticate(PasswordCredential(user, f"wrong{i}"),
                                           protocol="imap", mechanism="PLAIN",
                                           source_ip=f"192.0.2.{i}")
            times.append(time.perf_counter() - started)
        return min(times)

    known = await fastest("alice@example.test")
    unknown = await fastest("nobody@example.test")
    assert 0.5 < unknown / known < 2.0, (known, unknown)
