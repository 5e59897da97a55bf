"""Progressive delay and smart lockout (docs/authentication.md, "Throttling and lockout").

Named security regressions: a stranger cannot lock a user out from elsewhere; a device
retrying a stale password counts once; parallel guesses cannot outrun the lockout.
"""

from __future__ import annotations

import asyncio

import pytest

from auth.credentials import PasswordCredential
from auth.errors import AuthenticationFailed, AuthUnavailable
from auth.hashing import HashRunner
from auth.principal import Principal
from auth.service import AuthService
from auth.state import MemoryThrottleState
from auth.throttle import ThrottleKeys, ThrottlePolicy, normalise_source
from tests.unit.auth.fakes import Clock, FakeDirectory

ALICE = "alice@example.test"
PW = "S3cret!pass"
HOME = "192.0.2.10"        # where alice logs in from
ATTACKER = "203.0.113.66"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def directory() -> FakeDirectory:
    d = FakeDirectory()
    d.add(ALICE, PW)
    for i in range(60):
        d.add(f"user{i}@example.test", f"pw{i}")
    return d


@pytest.fixture
def state() -> MemoryThrottleState:
    return MemoryThrottleState()


def make_service(directory: FakeDirectory, state: MemoryThrottleState, clock: Clock,
                 **policy: float) -> AuthService:
    return AuthService(directory, state, policy=ThrottlePolicy(**policy),  # type: ignore[arg-type]
                       clock=clock, sleep=clock.sleep)


@pytest.fixture
def service(directory: FakeDirectory, state: MemoryThrottleState, clock: Clock) -> AuthService:
    return make_service(directory, state, clock)


async def attempt(service: AuthService, user: str, password: str, source: str) -> bool:
    try:
        p = await service.authenticate(PasswordCredential(user, password),
                                       protocol="activesync", mechanism="Basic",
                                       source_ip=source)
    except AuthenticationFailed:
        return False
    assert isinstance(p, Principal)
    return True


async def test_progressive_delay_doubles_to_the_cap(service: AuthService,
                                                    clock: Clock) -> None:
    for i in range(6):
        assert not await attempt(service, ALICE, f"guess{i}", ATTACKER)
    assert clock.sleeps == [2.0, 4.0, 8.0, 15.0, 15.0, 15.0]


async def test_pair_lockout_refuses_even_the_right_password_from_that_source(
        service: AuthService, directory: FakeDirectory, state: MemoryThrottleState) -> None:
    for i in range(10):
        assert not await attempt(service, ALICE, f"guess{i}", ATTACKER)
    verifications = directory.verifications
    assert not await attempt(service, ALICE, PW, ATTACKER)
    assert directory.verifications == verifications  # refused before any verification
    assert [e.reason for e in state.audit if e.event == "lockout"] == ["locked acct-src"]


async def test_stranger_cannot_lock_user_out_from_elsewhere(
        service: AuthService) -> None:
    """Security regression: failures from a stranger's address leave alice's own
    address unaffected (no account-wide lock at the pair threshold)."""
    for i in range(30):
        await attempt(service, ALICE, f"guess{i}", ATTACKER)
    assert not await attempt(service, ALICE, PW, ATTACKER)
    assert await attempt(service, ALICE, PW, HOME)


async def test_spraying_source_is_locked_but_its_victims_are_not(
        service: AuthService) -> None:
    for i in range(50):  # one guess per account: the pair counters stay at 1
        assert not await attempt(service, f"user{i}@example.test", "Winter2026!", ATTACKER)
    assert not await attempt(service, "user55@example.test", "pw55", ATTACKER)
    assert await attempt(service, "user55@example.test", "pw55", HOME)
    assert await attempt(service, "user0@example.test", "pw0", HOME)


async def test_distributed_guessing_locks_only_unfamiliar_sources(
        directory: FakeDirectory, state: MemoryThrottleState, clock: Clock) -> None:
    service = make_service(directory, state, clock, account_threshold=20)
    assert await attempt(service, ALICE, PW, HOME)          # HOME becomes familiar
    for i in range(20):                                     # 20 bots, 1 guess each
        assert not await attempt(service, ALICE, f"guess{i}", f"198.51.100.{i}")
    # A new, unfamiliar source is refused even with the right password...
    assert not await attempt(service, ALICE, PW, "198.51.100.200")
    # ...but alice's familiar source keeps working.
    assert await attempt(service, ALICE, PW, HOME)
    # After the account lock ends, the new source works again.
    clock.now += 901 + 3600
    assert await attempt(service, ALICE, PW, "198.51.100.200")


async def test_stale_device_password_counts_once(
        service: AuthService, state: MemoryThrottleState, clock: Clock) -> None:
    """Security regression: a phone retrying the same old password all day must not
    lock its owner out."""
    for _ in range(100):
        assert not await attempt(service, ALICE, "OldPassword1", HOME)
    counters = await state.get_counters([f"acct-src:1|{HOME}", "acct:1", f"src:{HOME}"])
    assert {k: c.count for k, c in counters.items()} == {
        f"acct-src:1|{HOME}": 1, "acct:1": 1, f"src:{HOME}": 1}
    assert clock.sleeps[-1] == 2.0                 # the tarpit still applies
    assert await attempt(service, ALICE, PW, HOME)
    assert sum(e.reason.endswith("(repeated, not counted)") for e in state.audit) == 99


async def test_distinct_wrong_passwords_do_count(service: AuthService,
                                                 state: MemoryThrottleState) -> None:
    for i in range(3):
        await attempt(service, ALICE, f"guess{i}", HOME)
    counters = await state.get_counters([f"acct-src:1|{HOME}"])
    assert counters[f"acct-src:1|{HOME}"].count == 3


async def test_success_clears_the_pair_but_not_the_account_counter(
        service: AuthService, state: MemoryThrottleState) -> None:
    for i in range(3):
        await attempt(service, ALICE, f"guess{i}", HOME)
    assert await attempt(service, ALICE, PW, HOME)
    counters = await state.get_counters([f"acct-src:1|{HOME}", "acct:1"])
    assert f"acct-src:1|{HOME}" not in counters
    assert counters["acct:1"].count == 3


async def test_lock_expires(service: AuthService, clock: Clock) -> None:
    for i in range(10):
        await attempt(service, ALICE, f"guess{i}", ATTACKER)
    assert not await attempt(service, ALICE, PW, ATTACKER)
    clock.now += 901
    assert await attempt(service, ALICE, PW, ATTACKER)


async def test_ipv6_counted_per_64(service: AuthService, state: MemoryThrottleState) -> None:
    for i in range(10):
        await attempt(service, ALICE, f"guess{i}", f"2001:db8:1:2::{i + 1:x}")
    # Rotating addresses inside the /64 did not escape the pair lock.
    assert not await attempt(service, ALICE, PW, "2001:db8:1:2:ffff::1")
    assert await attempt(service, ALICE, PW, "2001:db8:1:3::1")


def test_normalise_source() -> None:
    assert normalise_source("192.0.2.1") == "192.0.2.1"
    assert normalise_source("::ffff:192.0.2.1") == "192.0.2.1"
    assert normalise_source("2001:db8::1") == "2001:db8::/64"
    assert normalise_source("fe80::1%eth0") == "fe80::/64"
    assert normalise_source("unix:/run/x") == "unix:/run/x"
    assert normalise_source("") == "unknown"


def test_keys_match_the_interface_formats() -> None:
    keys = ThrottleKeys(account="7", source="192.0.2.1")
    assert (keys.pair, keys.src, keys.acct) == (
        "acct-src:7|192.0.2.1", "src:192.0.2.1", "acct:7")


async def test_parallel_guesses_cannot_outrun_the_lockout(
        service: AuthService, directory: FakeDirectory) -> None:
    """Security regression: 40 concurrent guesses from one source get at most the
    pair threshold of verifications."""
    results = await asyncio.gather(*(attempt(service, ALICE, f"guess{i}", ATTACKER)
                                     for i in range(40)))
    assert not any(results)
    assert directory.verifications == 10


async def test_hash_runner_refuses_beyond_max_pending() -> None:
    runner = HashRunner(max_workers=1, max_pending=2)
    gate = asyncio.Event()
    loop = asyncio.get_running_loop()
    import threading
    release = threading.Event()

    def block() -> int:
        loop.call_soon_threadsafe(gate.set)
        release.wait(5)
        return 1

    first = asyncio.create_task(runner.run(block))
    second = asyncio.create_task(runner.run(block))
    await gate.wait()
    with pytest.raises(AuthUnavailable):
        await runner.run(block)
    release.set()
    assert await asyncio.gather(first, second) == [1, 1]
    runner.close()


async def test_unknown_name_forms_share_one_counter(
        directory: FakeDirectory, state: MemoryThrottleState, clock: Clock) -> None:
    """Like a real account's, so lockout does not reveal which names exist."""
    service = make_service(directory, state, clock)
    for i, name in enumerate(["bob@example.test", "EXAMPLE\\bob", "BOB"] * 4):
        await attempt(service, name, f"guess{i}", ATTACKER)
    assert sum(e.event == "lockout" and e.reason == "locked acct-src"
               for e in state.audit) == 1


def test_policy_limits_are_validated() -> None:
    with pytest.raises(ValueError, match="pair_threshold"):
        ThrottlePolicy(pair_threshold=0)
    with pytest.raises(ValueError, match="delay_max"):
        ThrottlePolicy(delay_max=-1)
