"""The LDAP directory against a real OpenLDAP slapd (started per module on loopback
ports, StartTLS and LDAPS with a test CA) and the real store (both engines), through
the AuthService: search by every login attribute, bind as the user, provisioning of
mailboxes on first login, groups, RFC 4515 escaping, RFC 4513 §5.1.2 empty
passwords, failover, certificate checks and failing closed."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import ldap
import pytest
from passlib.context import CryptContext

from auth.credentials import PasswordCredential
from auth.directories.ldap import LdapDirectory, LdapSettings
from auth.directories.local import LocalDirectory
from auth.errors import AuthenticationFailed, AuthUnavailable, LoginNameError
from auth.hashing import HashRunner
from auth.names import parse_login
from auth.principal import AUTHENTICATED_USERS, Principal
from auth.service import AuthService
from gateway.errors import ConfigError
from tests.ldap_support.slapd import (
    BASE_DN,
    ROOT_DN,
    ROOT_PW,
    SERVICE_DN,
    SLAPD_MISSING,
    Slapd,
    free_port,
    make_ca_and_server,
    user_ldif,
)

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(SLAPD_MISSING is not None, reason=SLAPD_MISSING or "")]

CHEAP = CryptContext(schemes=["argon2"], argon2__type="ID", argon2__memory_cost=256,
                     argon2__rounds=1, argon2__parallelism=1)
ALICE_PW = "A1ice-directory-pw"
SOURCE = "192.0.2.10"


@pytest.fixture(scope="module")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    server = Slapd(tmp_path_factory.mktemp("slapd"))
    server.start()
    server.add(user_ldif("alice", mail="alice@example.test", password=ALICE_PW,
                         upn="alice@corp.example.test", sam="alice",
                         proxies=("SMTP:alice@example.test", "smtp:a.smith@example.test",
                                  "smtp:alice@foreign.test", "X400:c=us;a= ;"),
                         groups=("Sales", "VPN Users"), display="Alice Smith"))
    server.add(user_ldif("bob", mail="bob@example.test", password="B0b-pw", sam="bob"))
    server.add(user_ldif("carol", mail="carol@example.test", password="Car0l-pw",
                         sam="carol", uac=514))  # ACCOUNTDISABLE
    server.add(user_ldif("dave", mail="dave@example.test", password="Dave-pw",
                         sam="dave(x)"))
    server.add(user_ldif("eve", mail="eve@example.test", password="Eve-pw",
                         sam="eve*"))  # Windows forbids '*': the store refuses it
    server.add(user_ldif("erin", mail=None, password="Erin-pw", sam="erin"))
    server.add(user_ldif("local", mail="localuser@example.test", password="Ldap-pw",
                         sam="localuser"))
    yield server
    server.stop()


def root(slapd: Slapd) -> Any:
    conn = ldap.initialize(slapd.ldap_uri)
    conn.simple_bind_s(ROOT_DN, ROOT_PW)
    return conn


def settings_for(slapd: Slapd, **overrides: Any) -> LdapSettings:
    base = LdapSettings(uris=(slapd.ldap_uri,), base_dn=BASE_DN, bind_dn=SERVICE_DN,
                        bind_password_file=str(slapd.password_file), tls="starttls",
                        ca_file=str(slapd.ca), netbios_domain="EXAMPLE",
                        connect_timeout=2, operation_timeout=5, retry_after=30)
    return replace(base, **overrides)


class Sleeps:
    async def __call__(self, seconds: float) -> None:
        return None


@pytest.fixture
async def org(store: Any) -> AsyncIterator[Any]:
    await store.org.create_accepted_domain("example", "example.test")
    await store.org.set_settings("organization", {"name": "Example",
                                                  "netbios_domain": "EXAMPLE"})
    await store.org.create_mailbox(name="localuser",
                                   primary_smtp_address="localuser@example.test",
                                   password_hash=CHEAP.hash("Local-pw"))
    await store.org.create_mailbox(name="svcacct",
                                   primary_smtp_address="svcacct@example.test",
                                   password_hash=CHEAP.hash("Svc-pw"))
    yield store


@pytest.fixture
def runner() -> Iterator[HashRunner]:
    r = HashRunner(max_workers=2)
    yield r
    r.close()


async def service_for(store: Any, runner: HashRunner, settings: LdapSettings
                      ) -> tuple[AuthService, LdapDirectory]:
    local = LocalDirectory(store.org, runner, settings_ttl=0)
    directory = await LdapDirectory.open(settings, store.org, fallback=local)
    return AuthService(directory, store.auth_state, sleep=Sleeps()), directory


async def login(service: AuthService, user: str, password: str) -> Principal:
    return await service.authenticate(PasswordCredential(user, password), protocol="imap",
                                      mechanism="PLAIN", source_ip=SOURCE)


@pytest.fixture
async def ldap_service(org: Any, runner: HashRunner, slapd: Slapd
                       ) -> AsyncIterator[tuple[AuthService, LdapDirectory]]:
    service, directory = await service_for(org, runner, settings_for(slapd))
    yield service, directory
    await directory.close()


async def test_first_login_creates_the_mailbox_and_maps_attributes(
        org: Any, ldap_service: tuple[AuthService, LdapDirectory]) -> None:
    service, _ = ldap_service
    principal = await login(service, "alice@example.test", ALICE_PW)
    assert principal.name == "EXAMPLE\\alice"
    assert principal.primary_smtp_address == "alice@example.test"
    assert principal.display_name == "Alice Smith"
    assert {"EXAMPLE\\Sales", "EXAMPLE\\VPN Users", AUTHENTICATED_USERS} <= principal.groups
    mailbox = await org.org.get_mailbox("alice@example.test")
    assert mailbox.id == principal.mailbox_id
    assert mailbox.source == "ldap"
    assert mailbox.password_hash is None and mailbox.nt_hash is None
    assert mailbox.user_principal_name == "alice@corp.example.test"
    assert mailbox.sam_account_name == "alice"
    # the further smtp: proxy in an accepted domain; the foreign one and X400 dropped
    assert mailbox.email_addresses == ("a.smith@example.test",)


@pytest.mark.parametrize("name", ["alice@example.test", "ALICE@EXAMPLE.TEST",
                                  "alice@corp.example.test", "a.smith@example.test",
                                  "EXAMPLE\\alice", "alice"])
async def test_every_login_attribute_finds_the_same_mailbox(
        org: Any, ldap_service: tuple[AuthService, LdapDirectory], name: str) -> None:
    service, _ = ldap_service
    first = await login(service, "alice@example.test", ALICE_PW)
    again = await login(service, name, ALICE_PW)
    assert again.mailbox_id == first.mailbox_id
    assert len([m for m in await org.org.list_mailboxes() if m.source == "ldap"]) == 1


async def test_wrong_password_unknown_user_disabled_account_are_refused_alike(
        org: Any, ldap_service: tuple[AuthService, LdapDirectory]) -> None:
    service, _ = ldap_service
    for name, password in [("alice@example.test", "wrong"), ("nobody@example.test", "x"),
                           ("carol@example.test", "Car0l-pw"), ("OTHERDOM\\alice", ALICE_PW)]:
        with pytest.raises(AuthenticationFailed):
            await login(service, name, password)
    audit = await org.auth_state.list_audit(limit=20)
    reasons = {e.reason for e in audit if e.event == "failure"}
    assert {"wrong password", "unknown user", "account disabled"} <= reasons


async def test_empty_password_is_refused_before_any_bind(
        org: Any, ldap_service: tuple[AuthService, LdapDirectory], slapd: Slapd) -> None:
    """RFC 4513 §5.1.2: an empty password would be an unauthenticated bind, which
    slapd (like AD) answers with success. It must never reach the server."""
    service, directory = ldap_service
    account = await directory.lookup(parse_login("bob@example.test"))
    assert account is not None
    binds: list[str] = []
    real_run = directory._pool.run

    async def spy(kind: Any, operation: Any) -> Any:
        binds.append(kind)
        return await real_run(kind, operation)

    directory._pool.run = spy  # type: ignore[method-assign]
    check = await directory.verify_password(account, "")
    assert not check.ok and binds == []
    with pytest.raises(AuthenticationFailed):
        await login(service, "bob@example.test", "")
    assert "bind" not in binds
    # and the server really would have said yes (the reason for the rule):
    conn = ldap.initialize(slapd.ldap_uri)
    conn.simple_bind_s(f"uid=bob,ou=people,{BASE_DN}", "")
    conn.unbind_s()


@pytest.mark.parametrize("name", ["*", "al*", "dave(x)", "dave*", "alice)(mail=*",
                                  "*@example.test", "alice\\2a", "eve*"])
async def test_filter_values_are_escaped(
        org: Any, ldap_service: tuple[AuthService, LdapDirectory], name: str) -> None:
    """RFC 4515 §3: a name with * ( ) \\ matches literally, never as a pattern."""
    _, directory = ldap_service
    try:
        login_name = parse_login(name, default_domain="example.test")
    except LoginNameError:
        return  # refused even earlier: fine
    users = await directory.search(login_name)
    if name in ("dave(x)", "eve*"):
        assert [u.sam_account_name for u in users] == [name]  # literal match
    else:
        assert users == []


async def test_dave_with_filter_characters_logs_in(
        ldap_service: tuple[AuthService, LdapDirectory]) -> None:
    service, _ = ldap_service
    principal = await login(service, "dave(x)", "Dave-pw")
    assert principal.primary_smtp_address == "dave@example.test"
    with pytest.raises(AuthenticationFailed):  # found, but the store cannot hold it
        await login(service, "eve*", "Eve-pw")


async def test_user_without_mail_cannot_log_in(
        ldap_service: tuple[AuthService, LdapDirectory]) -> None:
    service, _ = ldap_service
    with pytest.raises(AuthenticationFailed):
        await login(service, "erin", "Erin-pw")


async def test_local_mailboxes_still_work_and_directory_clash_is_refused(
        org: Any, ldap_service: tuple[AuthService, LdapDirectory]) -> None:
    service, _ = ldap_service
    # not in LDAP: the local directory answers
    assert (await login(service, "svcacct@example.test", "Svc-pw")).name == "EXAMPLE\\svcacct"
    # in LDAP with the address of a local mailbox: neither password gets in
    with pytest.raises(AuthenticationFailed):
        await login(service, "localuser@example.test", "Ldap-pw")
    with pytest.raises(AuthenticationFailed):
        await login(service, "localuser@example.test", "Local-pw")


async def test_directory_changes_follow_and_removed_users_lose_access(
        org: Any, ldap_service: tuple[AuthService, LdapDirectory], slapd: Slapd) -> None:
    service, _ = ldap_service
    slapd.add(user_ldif("frank", mail="frank@example.test", password="Frank-pw",
                        sam="frank", display="Frank"))
    conn = root(slapd)
    dn = f"uid=frank,ou=people,{BASE_DN}"
    try:
        first = await login(service, "frank", "Frank-pw")
        conn.modify_s(dn, [(ldap.MOD_REPLACE, "displayName", [b"Frank N. Stein"]),
                           (ldap.MOD_ADD, "proxyAddresses", [b"smtp:fns@example.test"])])
        again = await login(service, "fns@example.test", "Frank-pw")
        assert again.mailbox_id == first.mailbox_id
        mailbox = await org.org.get_mailbox_by_id(first.mailbox_id)
        assert mailbox.display_name == "Frank N. Stein"
        assert mailbox.email_addresses == ("fns@example.test",)
        conn.delete_s(dn)
        with pytest.raises(AuthenticationFailed):
            await login(service, "frank@example.test", "Frank-pw")
    finally:
        try:
            conn.delete_s(dn)
        except ldap.NO_SUCH_OBJECT:
            pass
        conn.unbind_s()


async def test_ldaps(org: Any, runner: HashRunner, slapd: Slapd) -> None:
    service, directory = await service_for(
        org, runner, settings_for(slapd, uris=(slapd.ldaps_uri,), tls="ldaps"))
    try:
        assert (await login(service, "bob@example.test", "B0b-pw")).name == "EXAMPLE\\bob"
    finally:
        await directory.close()


async def test_failover_to_the_second_uri(org: Any, runner: HashRunner, slapd: Slapd,
                                          caplog: pytest.LogCaptureFixture) -> None:
    dead = f"ldap://127.0.0.1:{free_port()}"
    service, directory = await service_for(
        org, runner, settings_for(slapd, uris=(dead, slapd.ldap_uri)))
    try:
        with caplog.at_level(logging.WARNING, logger="auth.directory.ldap"):
            assert (await login(service, "bob@example.test", "B0b-pw")).mailbox_id
            assert (await login(service, "bob@example.test", "B0b-pw")).mailbox_id
        assert any(dead in r.getMessage() and "failing over" in r.getMessage()
                   for r in caplog.records)
        # the dead URI is skipped while marked down: one warning, not one per login
        assert sum(dead in r.getMessage() for r in caplog.records) == 1
    finally:
        await directory.close()


async def test_unreachable_directory_fails_closed_with_a_clear_log(
        org: Any, runner: HashRunner, slapd: Slapd,
        caplog: pytest.LogCaptureFixture) -> None:
    dead = f"ldap://127.0.0.1:{free_port()}"
    service, directory = await service_for(org, runner, settings_for(slapd, uris=(dead,)))
    try:
        with caplog.at_level(logging.ERROR, logger="auth.directory.ldap"):
            with pytest.raises(AuthUnavailable):
                await login(service, "bob@example.test", "B0b-pw")
            # local accounts too: LDAP is asked first and cannot answer
            with pytest.raises(AuthUnavailable):
                await login(service, "svcacct@example.test", "Svc-pw")
        assert any("LDAP directory unreachable" in r.getMessage() and dead in r.getMessage()
                   for r in caplog.records)
    finally:
        await directory.close()


async def test_untrusted_certificate_is_refused(org: Any, runner: HashRunner, slapd: Slapd,
                                                tmp_path: Path) -> None:
    other_ca, _, _ = make_ca_and_server(tmp_path)
    for uris, tls in (((slapd.ldap_uri,), "starttls"), ((slapd.ldaps_uri,), "ldaps")):
        service, directory = await service_for(
            org, runner, settings_for(slapd, uris=uris, tls=tls, ca_file=str(other_ca)))
        try:
            with pytest.raises(AuthUnavailable):
                await login(service, "bob@example.test", "B0b-pw")
        finally:
            await directory.close()


async def test_wrong_service_password_is_reported(
        org: Any, runner: HashRunner, slapd: Slapd, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    bad = tmp_path / "bad.pw"
    bad.write_text("not-the-password\n")
    service, directory = await service_for(
        org, runner, settings_for(slapd, bind_password_file=str(bad)))
    try:
        with caplog.at_level(logging.ERROR, logger="auth.directory.ldap"):
            with pytest.raises(AuthUnavailable):
                await login(service, "bob@example.test", "B0b-pw")
        assert any("service bind" in r.getMessage() for r in caplog.records)
        assert not any("not-the-password" in r.getMessage() for r in caplog.records)
    finally:
        await directory.close()


async def test_lockout_applies_to_directory_users(
        org: Any, ldap_service: tuple[AuthService, LdapDirectory]) -> None:
    service, _ = ldap_service
    for i in range(service.throttle.policy.pair_threshold):
        with pytest.raises(AuthenticationFailed):
            await login(service, "bob@example.test", f"guess-{i}")
    with pytest.raises(AuthenticationFailed):
        await login(service, "bob@example.test", "B0b-pw")  # locked for this source
    audit = await org.auth_state.list_audit(limit=5)
    assert audit[0].reason == "account locked for this source"


async def test_settings_are_validated_all_at_once(org: Any, tmp_path: Path) -> None:
    bad = LdapSettings(uris=("http://x", "ldaps://y"), base_dn="not a dn", tls="starttls",
                       bind_dn="cn=svc,dc=x", pool_size=0, connect_timeout=0,
                       login_attributes=("mail", "uid"))
    with pytest.raises(ConfigError) as info:
        await LdapDirectory.open(bad, org.org)
    text = str(info.value)
    for fragment in ("http://x", "ldaps://y", "base_dn", "bind_password_file", "pool_size",
                     "connect_timeout", "login_attributes"):
        assert fragment in text
    empty = tmp_path / "empty.pw"
    empty.write_text("")
    with pytest.raises(ConfigError, match="unauthenticated bind"):
        await LdapDirectory.open(LdapSettings(uris=("ldap://h",), base_dn="dc=x",
                                              bind_dn="cn=a,dc=x",
                                              bind_password_file=str(empty)), org.org)


async def test_a_silent_server_times_out_without_stalling_the_event_loop(
        org: Any, runner: HashRunner, slapd: Slapd) -> None:
    """A server that accepts TCP and never answers: the login fails (closed) within
    the configured timeouts, and the event loop keeps running meanwhile (LDAP calls
    are in the pool's threads)."""
    import asyncio
    import time

    accepted: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    service, directory = await service_for(org, runner, settings_for(
        slapd, uris=(f"ldap://127.0.0.1:{port}",), connect_timeout=1, operation_timeout=1))
    ticks = 0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0.05)

    task = asyncio.create_task(ticker())
    started = time.monotonic()
    try:
        with pytest.raises(AuthUnavailable):
            await login(service, "bob@example.test", "B0b-pw")
        elapsed = time.monotonic() - started
        assert elapsed < 5
        assert ticks >= int(elapsed / 0.05) // 2  # the loop kept ticking
        assert accepted  # it really connected and waited
    finally:
        stop.set()
        await task
        await directory.close()
        for w in accepted:
            w.close()
        server.close()


async def test_a_certificate_for_another_host_name_is_refused(
        org: Any, runner: HashRunner, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    """RFC 4513 §3.1.3: the server's name must match its certificate, even when a
    trusted CA signed it."""
    other = Slapd(tmp_path, cert_hosts=("ldap.elsewhere.test",))
    other.start()
    try:
        for uri, tls in ((other.ldap_uri, "starttls"), (other.ldaps_uri, "ldaps")):
            service, directory = await service_for(org, runner, settings_for(
                other, uris=(uri,), tls=tls))
            try:
                with pytest.raises(AuthUnavailable):
                    await login(service, "bob@example.test", "B0b-pw")
            finally:
                await directory.close()
    finally:
        other.stop()
