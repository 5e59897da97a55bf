"""NTLM end to end below the wire: mailboxes provisioned with the admin cmdlets
(``New-Mailbox``/``Set-Mailbox -NtlmEnabled``), the local directory reading NT hashes
from the real store (both engines), the AuthService verifying pyspnego's NTLMv2
through a SASL exchange, with lockout counters and audit rows in the store."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
import spnego

from auth.directories.local import LocalDirectory
from auth.errors import AuthenticationFailed
from auth.hashing import HashRunner
from auth.mechanisms.sasl import Authenticate, SaslExchange, SendChallenge
from auth.principal import Principal
from auth.service import AuthService
from gateway.admin import AdminContext, run_line

PW = "S3cret!pass"
SOURCE = "192.0.2.10"

def client_step(context: spnego.ContextProxy, token: bytes | None = None) -> bytes:
    """One client step; pyspnego answers None only when it has nothing to send."""
    out = context.step(token)
    assert out is not None
    return out



class NoSleep:
    async def __call__(self, seconds: float) -> None:
        return None


@pytest.fixture
def runner() -> Iterator[HashRunner]:
    r = HashRunner(max_workers=2)
    yield r
    r.close()


@pytest.fixture
async def service(store: Any, runner: HashRunner) -> AuthService:
    ctx = AdminContext(store=store, server_name="mail1.example.test")
    await run_line(ctx, "New-AcceptedDomain -Name example -DomainName example.test")
    await run_line(ctx, "Set-OrganizationConfig -NetbiosDomain EXAMPLE")
    await run_line(ctx, f"New-Mailbox alice -PrimarySmtpAddress alice@example.test "
                        f"-Password '{PW}' -NtlmEnabled $true")
    await run_line(ctx, f"New-Mailbox bob -PrimarySmtpAddress bob@example.test "
                        f"-Password '{PW}'")
    return AuthService(LocalDirectory(store.org, runner, settings_ttl=0), store.auth_state,
                       sleep=NoSleep())


async def sasl_ntlm(service: AuthService, user: str, password: str = PW, *,
                    protocol: str = "smtp") -> Principal:
    """The SASL exchange a front end drives, with pyspnego as the client."""
    client = spnego.client(user, password, protocol="ntlm")
    exchange = SaslExchange.create("NTLM", allowed=frozenset({"NTLM", "PLAIN"}))
    step = exchange.begin(base64.b64encode(client_step(client)).decode())
    while isinstance(step, SendChallenge):
        step = exchange.feed(base64.b64encode(client_step(client, base64.b64decode(step.text))))
    assert isinstance(step, Authenticate)
    return await service.authenticate(step.credential, protocol=protocol,
                                      mechanism=exchange.mechanism.name, source_ip=SOURCE)


@pytest.mark.parametrize("user", ["alice", "EXAMPLE\\alice", "alice@example.test",
                                  "example.test\\alice"])
async def test_ntlm_login_with_every_name_form(service: AuthService, user: str) -> None:
    principal = await sasl_ntlm(service, user)
    assert principal.name == "EXAMPLE\\alice"
    assert principal.primary_smtp_address == "alice@example.test"


async def test_refused_without_ntlm_enabled_and_after_disabling(
        service: AuthService, store: Any) -> None:
    with pytest.raises(AuthenticationFailed):
        await sasl_ntlm(service, "bob")
    ctx = AdminContext(store=store, server_name="mail1.example.test")
    await run_line(ctx, "Set-Mailbox alice -NtlmEnabled $false")
    with pytest.raises(AuthenticationFailed):
        await sasl_ntlm(service, "alice")
    await run_line(ctx, "Set-Mailbox alice -Password 'N3w!passw0rd' -NtlmEnabled $true")
    with pytest.raises(AuthenticationFailed):
        await sasl_ntlm(service, "alice")  # the old password's hash is gone
    assert (await sasl_ntlm(service, "alice", "N3w!passw0rd")).name == "EXAMPLE\\alice"
    reasons = [e.reason for e in await store.auth_state.list_audit(limit=10)]
    assert reasons.count("NTLM not enabled for the mailbox") == 2
    assert "wrong password" in reasons


async def test_wrong_ntlm_attempts_lock_the_pair_in_the_store(
        service: AuthService, store: Any) -> None:
    for _ in range(service.throttle.policy.pair_threshold):
        with pytest.raises(AuthenticationFailed):
            await sasl_ntlm(service, "alice", "wrong-password")
    with pytest.raises(AuthenticationFailed):
        await sasl_ntlm(service, "alice")
    audit = await store.auth_state.list_audit(limit=3)
    assert audit[0].reason == "account locked for this source"
    assert any(e.event == "lockout" for e in await store.auth_state.list_audit(limit=20))
