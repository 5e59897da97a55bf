"""MemoryThrottleState keeps the same contract as store.auth_state."""

from __future__ import annotations

import pytest

from auth.state import AuthAuditEvent, MemoryThrottleState
from gateway.errors import ValidationError


async def test_counts_locks_and_resets() -> None:
    st = MemoryThrottleState()
    for t in range(1, 4):
        c = await st.record_failure("k", now=float(t), window=10, lock_for=5, threshold=3)
    assert (c.count, c.first_failure, c.last_failure, c.locked_until) == (3, 1.0, 3.0, 8.0)
    # Inside the window, further failures extend the lock.
    c = await st.record_failure("k", now=4, window=10, lock_for=5, threshold=3)
    assert (c.count, c.locked_until) == (4, 9.0)
    # Window over and the lock expired: everything restarts.
    c = await st.record_failure("k", now=100, window=10, lock_for=5, threshold=3)
    assert (c.count, c.first_failure, c.locked_until) == (1, 100.0, 0.0)


async def test_lock_survives_window_reset_while_running() -> None:
    st = MemoryThrottleState()
    await st.record_failure("k", now=0, window=1, lock_for=100, threshold=1)
    c = await st.record_failure("k", now=50, window=1, lock_for=0, threshold=1)
    assert c.count == 1 and c.locked_until == 100


async def test_never_locks_with_lock_for_zero_and_validates() -> None:
    st = MemoryThrottleState()
    for t in range(5):
        c = await st.record_failure("k", now=t, window=100, lock_for=0, threshold=1)
    assert c.count == 5 and c.locked_until == 0
    with pytest.raises(ValidationError):
        await st.record_failure("k", now=0, window=1, lock_for=0, threshold=0)


async def test_get_and_clear_and_bounds() -> None:
    st = MemoryThrottleState(max_counters=2, max_audit=2)
    for key in ("a", "b", "c"):
        await st.record_failure(key, now=0, window=1, lock_for=0, threshold=1)
    assert set(await st.get_counters(["a", "b", "c", "zz"])) == {"b", "c"}
    await st.clear(["b"])
    assert set(await st.get_counters(["b", "c"])) == {"c"}
    for i in range(3):
        await st.append_audit(AuthAuditEvent(at=i, event="failure", protocol="imap",
                                             mechanism="PLAIN", login="x", mailbox_id=None,
                                             source_ip="::1", outcome="failure", reason=""))
    assert [e.at for e in st.audit] == [1, 2]
