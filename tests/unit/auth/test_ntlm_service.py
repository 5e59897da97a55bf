"""AuthService with NtlmCredential: the same lookup, lockout, tarpit, policy and audit
path as passwords, with the NTLMv2 proof checked against the account's NT hash."""

from __future__ import annotations

import pytest
import spnego

from auth.credentials import NtlmCredential
from auth.directory import Account
from auth.errors import AuthenticationFailed
from auth.ntlm.exchange import NtlmServerExchange
from auth.passwords import nt_hash
from auth.principal import AUTHENTICATED_USERS
from auth.service import AuthService
from auth.state import MemoryThrottleState
from tests.unit.auth.fakes import Clock, FakeDirectory

ALICE = "alice@example.test"
PW = "S3cret!pass"
HOME = "192.0.2.10"

def client_step(context: spnego.ContextProxy, token: bytes | None = None) -> bytes:
    """One client step; pyspnego answers None only when it has nothing to send."""
    out = context.step(token)
    assert out is not None
    return out



class NtlmDirectory(FakeDirectory):
    """FakeDirectory plus NT hashes (what LocalDirectory reads from the store)."""

    def __init__(self) -> None:
        super().__init__()
        self.nt_hashes: dict[int, bytes] = {}

    async def lookup_nt_hash(self, account: Account) -> bytes | None:
        return self.nt_hashes.get(account.mailbox_id)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def directory() -> NtlmDirectory:
    d = NtlmDirectory()
    alice = d.add(ALICE, PW)
    d.nt_hashes[alice.mailbox_id] = nt_hash(PW)
    d.add("bob@example.test", "B0b")  # no NT hash: NTLM not enabled
    return d


@pytest.fixture
def state() -> MemoryThrottleState:
    return MemoryThrottleState()


@pytest.fixture
def service(directory: NtlmDirectory, state: MemoryThrottleState,
            clock: Clock) -> AuthService:
    return AuthService(directory, state, clock=clock, sleep=clock.sleep)


def credential(clock: Clock, user: str = ALICE, password: str = PW) -> NtlmCredential:
    client = spnego.client(user, password, protocol="ntlm")
    server = NtlmServerExchange(clock=clock)
    return server.authenticate(client_step(client, server.challenge(client_step(client))))


async def ntlm_login(service: AuthService, clock: Clock, user: str = ALICE,
                     password: str = PW, *, source: str = HOME, protocol: str = "imap"
                     ) -> object:
    return await service.authenticate(credential(clock, user, password), protocol=protocol,
                                      mechanism="NTLM", source_ip=source)


async def reasons(state: MemoryThrottleState) -> list[str]:
    """Audit reasons, newest first (lockout events left out)."""
    return [e.reason for e in reversed(state.audit) if e.event != "lockout"]


async def test_success_gives_the_principal_and_is_audited(
        service: AuthService, clock: Clock, state: MemoryThrottleState) -> None:
    cred = credential(clock)
    principal = await service.authenticate(cred, protocol="imap", mechanism="NTLM",
                                           source_ip=HOME)
    assert cred.outcome.session_key is not None and len(cred.outcome.session_key) == 16
    assert getattr(principal, "primary_smtp_address", None) == ALICE
    assert AUTHENTICATED_USERS in getattr(principal, "groups", ())
    audit = state.audit[-1:]
    assert (audit[0].event, audit[0].mechanism, audit[0].login) == ("success", "NTLM", ALICE)
    assert clock.sleeps == []


@pytest.mark.parametrize("user,password,reason", [
    (ALICE, "wrong", "wrong password"),
    ("nobody@example.test", PW, "unknown user"),
    ("bob@example.test", "B0b", "NTLM not enabled for the mailbox"),
])
async def test_refusals_are_generic_tarpitted_and_audited(
        service: AuthService, clock: Clock, state: MemoryThrottleState, user: str,
        password: str, reason: str) -> None:
    cred = credential(clock, user, password)
    with pytest.raises(AuthenticationFailed) as info:
        await service.authenticate(cred, protocol="imap", mechanism="NTLM", source_ip=HOME)
    assert cred.outcome.session_key is None
    assert str(info.value) == "Authentication failed"
    assert await reasons(state) == [reason]
    assert clock.sleeps and clock.sleeps[-1] > 0


async def test_ntlmv1_is_refused_by_the_service(
        service: AuthService, clock: Clock, state: MemoryThrottleState,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LM_COMPAT_LEVEL", "1")
    with pytest.raises(AuthenticationFailed):
        await ntlm_login(service, clock)
    assert await reasons(state) == ["NTLMv1 refused"]


async def test_lockout_is_shared_with_passwords(
        service: AuthService, clock: Clock, state: MemoryThrottleState) -> None:
    """Wrong NTLM attempts count on the same (account, source) counter as wrong
    passwords: after the threshold even the right NTLM proof is refused."""
    threshold = service.throttle.policy.pair_threshold
    for _ in range(threshold):
        with pytest.raises(AuthenticationFailed):
            await ntlm_login(service, clock, password="wrong")
    with pytest.raises(AuthenticationFailed):
        await ntlm_login(service, clock)
    assert (await reasons(state))[0] == "account locked for this source"
    # the same lock holds for a PLAIN password from that source
    from auth.credentials import PasswordCredential
    with pytest.raises(AuthenticationFailed):
        await service.authenticate(PasswordCredential(ALICE, PW), protocol="imap",
                                   mechanism="PLAIN", source_ip=HOME)
    # and another source is unaffected
    assert await ntlm_login(service, clock, source="198.51.100.7")


async def test_protocol_switch_applies(service: AuthService, clock: Clock,
                                       directory: NtlmDirectory,
                                       state: MemoryThrottleState) -> None:
    directory.set_flags(ALICE, pop_enabled=False)
    with pytest.raises(AuthenticationFailed):
        await ntlm_login(service, clock, protocol="pop3")
    assert await reasons(state) == ["protocol pop3 disabled for the mailbox"]


async def test_directory_without_nt_hashes_refuses(state: MemoryThrottleState,
                                                   clock: Clock) -> None:
    plain = FakeDirectory()
    plain.add(ALICE, PW)
    service = AuthService(plain, state, clock=clock, sleep=clock.sleep)
    with pytest.raises(AuthenticationFailed):
        await ntlm_login(service, clock)
    assert await reasons(state) == ["NTLM not enabled for the mailbox"]


async def test_downlevel_name_resolves(service: AuthService, clock: Clock,
                                       directory: NtlmDirectory) -> None:
    # FakeDirectory resolves by user part for down-level names
    directory.accounts["alice"] = directory.accounts[ALICE]
    principal = await ntlm_login(service, clock, "EXAMPLE\\alice")
    assert getattr(principal, "mailbox_id", None) == directory.accounts[ALICE].mailbox_id
