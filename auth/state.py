"""Where failure counters and the audit trail live: the ``ThrottleState`` seam.

Role: the small protocol the AuthService needs for lockout counters and auth events.
``store.auth_state`` (docs/dev/interfaces.md) satisfies it, so every process and node
sees the same numbers; ``MemoryThrottleState`` is the in-process implementation for unit
tests and single-process tools.

Invariants (the store keeps them too): ``record_failure`` is atomic per key; a
counter whose window has passed restarts at 1; ``locked_until`` becomes at least
``now + lock_for`` whenever the count reaches ``threshold`` (``lock_for`` 0: never
lock); a lock that has not expired survives a window reset; ``threshold >= 1``.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Protocol

from gateway.errors import ValidationError
from gateway.store.models import AuthAuditEvent, FailureCounter

__all__ = ["AuthAuditEvent", "FailureCounter", "MemoryThrottleState", "ThrottleState"]


class ThrottleState(Protocol):
    """Shared failure counters and the audit trail (``store.auth_state``)."""

    async def get_counters(self, keys: list[str]) -> dict[str, FailureCounter]: ...

    async def record_failure(self, key: str, *, now: float, window: float, lock_for: float,
                             threshold: int) -> FailureCounter: ...

    async def clear(self, keys: list[str]) -> None: ...

    async def append_audit(self, event: AuthAuditEvent) -> None: ...


class MemoryThrottleState:
    """``ThrottleState`` in process memory (tests; never shared between processes).

    Bounded: at most ``max_counters`` counters (least recently touched dropped first)
    and ``max_audit`` audit events.
    """

    def __init__(self, *, max_counters: int = 100_000, max_audit: int = 10_000) -> None:
        self._counters: OrderedDict[str, FailureCounter] = OrderedDict()
        self._max_counters = max_counters
        self.audit: list[AuthAuditEvent] = []
        self._max_audit = max_audit

    async def get_counters(self, keys: list[str]) -> dict[str, FailureCounter]:
        return {k: self._counters[k] for k in keys if k in self._counters}

    async def record_failure(self, key: str, *, now: float, window: float, lock_for: float,
                             threshold: int) -> FailureCounter:
        if window < 0 or lock_for < 0 or threshold < 1:
            raise ValidationError("window and lock_for >= 0, threshold >= 1")
        old = self._counters.pop(key, None)
        if old is None or now - old.first_failure > window:
            count, first = 1, now
            locked_until = old.locked_until if old and old.locked_until > now else 0.0
        else:
            count, first = old.count + 1, old.first_failure
            locked_until = old.locked_until
        if lock_for > 0 and count >= threshold:
            locked_until = max(locked_until, now + lock_for)
        counter = FailureCounter(key=key, count=count, first_failure=first,
                                 last_failure=now, locked_until=locked_until)
        self._counters[key] = counter
        while len(self._counters) > self._max_counters:
            self._counters.popitem(last=False)
        return counter

    async def clear(self, keys: list[str]) -> None:
        for k in keys:
            self._counters.pop(k, None)

    async def append_audit(self, event: AuthAuditEvent) -> None:
        self.audit.append(event)
        if len(self.audit) > self._max_audit:
            del self.audit[: len(self.audit) - self._max_audit]
