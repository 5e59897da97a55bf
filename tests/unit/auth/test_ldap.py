"""LDAP directory pieces without a server: filters (RFC 4515 escaping), attribute
mapping, settings validation, and the pool's limits against a silent TCP peer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from auth.directories.ldap import DirectoryUser, LdapDirectory, LdapSettings, group_name
from auth.directories.ldap_pool import LdapPool
from auth.errors import AuthUnavailable
from auth.names import parse_login


def settings(**overrides: Any) -> LdapSettings:
    values: dict[str, Any] = {"uris": ("ldap://127.0.0.1:1",), "base_dn": "dc=example,dc=test"}
    values.update(overrides)
    return LdapSettings(**values)


def directory(**overrides: Any) -> LdapDirectory:
    d = LdapDirectory(settings(**overrides), org=None, pool=None)  # type: ignore[arg-type]
    d._netbios = "EXAMPLE"
    d._domains = ("example.test",)
    d._default_domain = "example.test"
    return d


def test_filters_for_each_login_form() -> None:
    d = directory()
    assert d._filter(parse_login("alice@example.test")) == (
        "(&(objectClass=person)(|(mail=alice@example.test)"
        "(userPrincipalName=alice@example.test)(proxyAddresses=smtp:alice@example.test)))")
    assert d._filter(parse_login("EXAMPLE\\alice")) == \
        "(&(objectClass=person)(|(sAMAccountName=alice)))"
    assert d._filter(parse_login("OTHER\\alice")) is None  # not our domain
    assert d._filter(parse_login("alice")) == (
        "(&(objectClass=person)(|(sAMAccountName=alice)(mail=alice@example.test)"
        "(userPrincipalName=alice@example.test)"
        "(proxyAddresses=smtp:alice@example.test)))")


@pytest.mark.parametrize("name,escaped", [
    ("*", "\\2a"), ("a(b)c", "a\\28b\\29c"), ("a*b", "a\\2ab"),
    ("al*)(uid=*", "al\\2a\\29\\28uid=\\2a"),
])
def test_values_are_escaped(name: str, escaped: str) -> None:
    """RFC 4515 §3: * ( ) \\ and NUL are written as \\XX in assertion values."""
    query = directory(login_attributes=("sAMAccountName",))._filter(parse_login(name))
    assert query == f"(&(objectClass=person)(|(sAMAccountName={escaped})))"


def test_login_attributes_restrict_the_filter() -> None:
    d = directory(login_attributes=("mail",))
    assert d._filter(parse_login("EXAMPLE\\alice")) is None
    assert d._filter(parse_login("a@example.test")) == \
        "(&(objectClass=person)(|(mail=a@example.test)))"


def test_smtp_addresses_from_mail_and_proxy_addresses() -> None:
    user = DirectoryUser(dn="uid=a", mail=None, proxy_addresses=(
        "smtp:alias@example.test", "SMTP:primary@example.test", "X400:c=us;",
        "smtp:ALIAS@example.test", "sip:a@example.test"), user_principal_name=None,
        sam_account_name=None, display_name=None, groups=(), disabled=False)
    assert user.smtp_addresses() == ("primary@example.test", ["alias@example.test"])
    with_mail = DirectoryUser(dn="uid=a", mail="m@example.test",
                              proxy_addresses=("SMTP:m@example.test",),
                              user_principal_name=None, sam_account_name=None,
                              display_name=None, groups=(), disabled=False)
    assert with_mail.smtp_addresses() == ("m@example.test", [])
    nothing = DirectoryUser(dn="uid=a", mail=None, proxy_addresses=("X400:x",),
                            user_principal_name=None, sam_account_name=None,
                            display_name=None, groups=(), disabled=False)
    assert nothing.smtp_addresses() == (None, [])


def test_group_names() -> None:
    assert group_name("CN=Sales Team,OU=Groups,DC=example,DC=test") == "Sales Team"
    assert group_name("cn=a\\,b,dc=x") == "a,b"
    assert group_name("not a dn") is None


def test_settings_errors() -> None:
    assert settings().errors() == []
    assert settings(tls="ldaps", uris=("ldaps://h",)).errors() == []
    problems = settings(uris=(), tls="bogus", user_filter="uid=x", max_pending=0,
                        mail_attribute="ma il").errors()
    assert len(problems) == 5


@pytest.fixture
async def silent_port() -> AsyncIterator[int]:
    writers: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    for w in writers:
        w.close()
    server.close()


async def test_pool_refuses_at_once_beyond_max_pending(silent_port: int) -> None:
    pool = LdapPool(uris=(f"ldap://127.0.0.1:{silent_port}",), tls="starttls",
                    ca_file=None, bind_dn=None, bind_password="", connect_timeout=1,
                    operation_timeout=1, pool_size=1, max_pending=1, retry_after=30)
    try:
        first = asyncio.create_task(pool.run("search", lambda conn: conn.whoami_s()))
        await asyncio.sleep(0.05)
        started = time.monotonic()
        with pytest.raises(AuthUnavailable, match="busy"):
            await pool.run("search", lambda conn: conn.whoami_s())
        assert time.monotonic() - started < 0.5
        with pytest.raises(AuthUnavailable, match="cannot be reached"):
            await first  # StartTLS got no answer within the timeout
    finally:
        await pool.close()
    with pytest.raises(AuthUnavailable, match="shut down"):
        await pool.run("search", lambda conn: conn.whoami_s())
