"""Progressive delay and smart lockout, shared by every protocol.

Role: decide, from failure counters kept in the shared ``ThrottleState``, whether an
attempt is refused outright (locked) and how long a failure reply is delayed; record
failures and successes. The design and its parameters are in docs/authentication.md
("Throttling and lockout"); in short, failures are counted per (account, source), per
source and per account, so that

- guessing from one source locks that (account, source) pair: the user elsewhere is
  unaffected;
- spraying many accounts from one source locks that source only;
- the account-wide counter, fed by every source, has a much higher threshold and then
  refuses only sources that never logged in to the account successfully ("familiar"
  sources keep working): a stranger cannot lock the user out from everywhere;
- a device retrying the same stale password counts once (recent wrong passwords are
  remembered as keyed hashes, never in clear).

Invariants: sources are normalised (IPv4-mapped IPv6 to IPv4, IPv6 to its /64) so an
attacker cannot escape counting by rotating addresses inside one IPv6 subnet; every
limit is a field of ``ThrottlePolicy``; no password or hash of one is ever written to
the shared state.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import math
import secrets
from collections import OrderedDict
from dataclasses import dataclass

from auth.state import FailureCounter, ThrottleState

DAY = 86400.0


@dataclass(frozen=True)
class ThrottlePolicy:
    """Every limit of throttling and lockout (seconds and counts)."""

    # (account, source) pair: the ordinary lockout.
    pair_window: float = 900.0
    pair_threshold: int = 10
    pair_lock: float = 900.0
    # One source, any accounts: password spraying.
    source_window: float = 900.0
    source_threshold: int = 50
    source_lock: float = 900.0
    # One account, all sources: distributed guessing. Locks unfamiliar sources only.
    account_window: float = 3600.0
    account_threshold: int = 100
    account_lock: float = 900.0
    # A source that logged in to the account successfully within this time is familiar.
    familiar_for: float = 30 * DAY
    # Failure replies are delayed base * 2**(n-1) seconds, at most delay_max, where n
    # is the highest of the pair and source counts and account count / divisor.
    delay_base: float = 2.0
    delay_max: float = 15.0
    account_delay_divisor: int = 10
    # Recent wrong passwords remembered per process (keyed hashes) to count repeats once.
    repeat_ttl: float = 900.0
    repeat_max_entries: int = 10_000

    @property
    def retention(self) -> float:
        """How long a counter can matter: rows older than this may be pruned."""
        return max(self.pair_window, self.source_window, self.account_window,
                   self.familiar_for)

    def __post_init__(self) -> None:
        for name in ("pair_threshold", "source_threshold", "account_threshold",
                     "account_delay_divisor", "repeat_max_entries"):
            if getattr(self, name) < 1:
                raise ValueError(f"ThrottlePolicy.{name} must be at least 1")
        for name in ("pair_window", "pair_lock", "source_window", "source_lock",
                     "account_window", "account_lock", "familiar_for", "delay_base",
                     "delay_max", "repeat_ttl"):
            if getattr(self, name) < 0:
                raise ValueError(f"ThrottlePolicy.{name} must not be negative")


def normalise_source(source_ip: str) -> str:
    """The counting unit for a client address: IPv4 as is, IPv6 as its /64.

    A value that is not an IP address (a Unix socket, a test label) is kept verbatim
    (truncated to 64 characters) so it still gets counted.
    """
    try:
        addr = ipaddress.ip_address(source_ip.strip().split("%", 1)[0])
    except ValueError:
        return source_ip[:64] or "unknown"
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return str(ipaddress.IPv6Network((addr, 64), strict=False))
    return str(addr)


def unknown_account_key(user: str) -> str:
    """The account key of a name no directory knows: a short digest of its
    case-folded user part (the name itself never reaches the shared state)."""
    return "?" + hashlib.sha256(user.encode("utf-8", "surrogatepass")).hexdigest()[:32]


@dataclass(frozen=True)
class ThrottleKeys:
    """The counter keys of one attempt (formats from docs/dev/interfaces.md)."""

    account: str   # "<mailbox id>" or "?<digest>" for an unknown name
    source: str    # normalised source address

    @property
    def pair(self) -> str:
        return f"acct-src:{self.account}|{self.source}"

    @property
    def src(self) -> str:
        return f"src:{self.source}"

    @property
    def acct(self) -> str:
        return f"acct:{self.account}"

    @property
    def familiar(self) -> str:
        return f"known:{self.account}|{self.source}"


@dataclass(frozen=True)
class Verdict:
    """The throttle's view of an attempt before verification."""

    locked: str | None             # why the attempt is refused, or None
    counters: dict[str, FailureCounter]


@dataclass(frozen=True)
class FailureOutcome:
    delay: float
    counted: bool                  # False for a repeat of a recent wrong password
    new_locks: tuple[str, ...]     # keys that became locked by this failure


class RecentWrongPasswords:
    """Per-process memory of (account, wrong password) pairs seen recently.

    Entries are HMAC-SHA256 digests under a random per-process key: nothing derived
    from a password is comparable across processes or survives a restart.
    """

    def __init__(self, *, ttl: float, max_entries: int) -> None:
        self._key = secrets.token_bytes(32)
        self._ttl = ttl
        self._max = max_entries
        self._seen: OrderedDict[bytes, float] = OrderedDict()

    def seen_before(self, account: str, password: str, now: float) -> bool:
        """True if this wrong password was already counted for ``account``; remembers it."""
        digest = hmac.new(self._key, account.encode() + b"\0" + password.encode("utf-8",
                          "surrogatepass"), hashlib.sha256).digest()
        expires = self._seen.pop(digest, None)
        self._seen[digest] = now + self._ttl
        while len(self._seen) > self._max:
            self._seen.popitem(last=False)
        return expires is not None and expires > now


class Throttle:
    """Lockout and delay decisions over a ``ThrottleState``."""

    def __init__(self, state: ThrottleState, policy: ThrottlePolicy | None = None) -> None:
        self.state = state
        self.policy = policy or ThrottlePolicy()
        self._recent = RecentWrongPasswords(ttl=self.policy.repeat_ttl,
                                            max_entries=self.policy.repeat_max_entries)

    async def check(self, keys: ThrottleKeys, now: float) -> Verdict:
        """Is this attempt refused before any password is looked at?"""
        counters = await self.state.get_counters([keys.pair, keys.src, keys.acct,
                                                  keys.familiar])
        pair, src, acct = (counters.get(keys.pair), counters.get(keys.src),
                           counters.get(keys.acct))
        locked: str | None = None
        if pair is not None and pair.locked_until > now:
            locked = "account locked for this source"
        elif src is not None and src.locked_until > now:
            locked = "source locked"
        elif acct is not None and acct.locked_until > now and not self._familiar(
                counters.get(keys.familiar), now):
            locked = "account locked for unfamiliar sources"
        return Verdict(locked=locked, counters=counters)

    def _familiar(self, marker: FailureCounter | None, now: float) -> bool:
        return marker is not None and now - marker.last_failure <= self.policy.familiar_for

    def delay_for(self, counters: dict[str, FailureCounter], keys: ThrottleKeys) -> float:
        """The tarpit before a failure reply, from the current counts."""
        p = self.policy

        def count(key: str) -> int:
            c = counters.get(key)
            return c.count if c is not None else 0

        n = max(1, count(keys.pair), count(keys.src),
                math.ceil(count(keys.acct) / max(1, p.account_delay_divisor)))
        return min(p.delay_max, p.delay_base * 2 ** min(n - 1, 32))

    async def record_failure(self, keys: ThrottleKeys, password: str, now: float,
                             prior: dict[str, FailureCounter]) -> FailureOutcome:
        """Count a wrong password (once per distinct password) and return the delay."""
        if password and self._recent.seen_before(keys.account, password, now):
            return FailureOutcome(delay=self.delay_for(prior, keys), counted=False,
                                  new_locks=())
        return await self._count(keys, now, prior)

    async def record_refusal(self, keys: ThrottleKeys, now: float,
                             prior: dict[str, FailureCounter]) -> FailureOutcome:
        """Count a failure that involved no password guess (malformed login): source only."""
        p = self.policy
        c = await self.state.record_failure(keys.src, now=now, window=p.source_window,
                                            lock_for=p.source_lock,
                                            threshold=p.source_threshold)
        counters = dict(prior)
        counters[keys.src] = c
        newly = self._newly_locked(prior.get(keys.src), c, now)
        return FailureOutcome(delay=self.delay_for(counters, keys), counted=True,
                              new_locks=(keys.src,) if newly else ())

    async def _count(self, keys: ThrottleKeys, now: float,
                     prior: dict[str, FailureCounter]) -> FailureOutcome:
        p = self.policy
        counters = dict(prior)
        new_locks: list[str] = []
        for key, window, lock_for, threshold in (
                (keys.pair, p.pair_window, p.pair_lock, p.pair_threshold),
                (keys.src, p.source_window, p.source_lock, p.source_threshold),
                (keys.acct, p.account_window, p.account_lock, p.account_threshold)):
            c = await self.state.record_failure(key, now=now, window=window,
                                                lock_for=lock_for, threshold=threshold)
            if self._newly_locked(prior.get(key), c, now):
                new_locks.append(key)
            counters[key] = c
        return FailureOutcome(delay=self.delay_for(counters, keys), counted=True,
                              new_locks=tuple(new_locks))

    @staticmethod
    def _newly_locked(before: FailureCounter | None, after: FailureCounter,
                      now: float) -> bool:
        was_locked = before is not None and before.locked_until > now
        return after.locked_until > now and not was_locked

    async def record_success(self, keys: ThrottleKeys, now: float) -> None:
        """Forget the pair's failures and mark the source familiar for the account.

        The account-wide and source-wide counters are left alone: a success elsewhere
        must not reset what a distributed or spraying attacker has accumulated.
        """
        p = self.policy
        await self.state.clear([keys.pair])
        # The familiar marker reuses a counter that never locks; last_failure is the
        # time of the latest success. Reset when older than familiar_for.
        await self.state.record_failure(keys.familiar, now=now, window=p.familiar_for,
                                        lock_for=0, threshold=1)
