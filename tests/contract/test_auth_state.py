"""Contract: store.auth_state (docs/dev/interfaces.md, "Auth state")."""

from __future__ import annotations

import asyncio

from gateway.store.models import AuthAuditEvent


async def test_record_failure_window_and_lock(store):
    st = store.auth_state
    c = await st.record_failure("acct:1", now=100.0, window=60, lock_for=300, threshold=3)
    assert (c.count, c.first_failure, c.locked_until) == (1, 100.0, 0)
    await st.record_failure("acct:1", now=110.0, window=60, lock_for=300, threshold=3)
    c = await st.record_failure("acct:1", now=120.0, window=60, lock_for=300, threshold=3)
    assert c.count == 3 and c.locked_until == 420.0 and c.last_failure == 120.0
    # window passed: the count restarts, the running lock is kept
    c = await st.record_failure("acct:1", now=200.0, window=60, lock_for=300, threshold=3)
    assert c.count == 1 and c.first_failure == 200.0 and c.locked_until == 420.0
    c = await st.record_failure("acct:1", now=1000.0, window=60, lock_for=300, threshold=3)
    assert c.count == 1 and c.locked_until == 0
    got = await st.get_counters(["acct:1", "missing"])
    assert list(got) == ["acct:1"] and got["acct:1"].count == 1
    await st.clear(["acct:1"])
    assert await st.get_counters(["acct:1"]) == {}


async def test_lock_for_zero_never_locks(store):
    for i in range(5):
        c = await store.auth_state.record_failure("src:10.0.0.1", now=float(i), window=60,
                                                  lock_for=0, threshold=2)
    assert c.count == 5 and c.locked_until == 0


async def test_concurrent_failures_all_counted(store):
    await asyncio.gather(*(store.auth_state.record_failure(
        "acct:7", now=50.0, window=600, lock_for=0, threshold=100) for _ in range(20)))
    assert (await store.auth_state.get_counters(["acct:7"]))["acct:7"].count == 20


async def test_audit_newest_first(store):
    for i in range(5):
        await store.auth_state.append_audit(AuthAuditEvent(
            at=1000.0 + i, event="login", protocol="imap", mechanism="PLAIN",
            login=f"user{i}", mailbox_id=i or None, source_ip="192.0.2.1",
            outcome="failure" if i % 2 else "success", reason="bad password" if i % 2 else ""))
    events = await store.auth_state.list_audit(limit=3)
    assert [e.login for e in events] == ["user4", "user3", "user2"]
    assert events[0].mailbox_id == 4
    since = await store.auth_state.list_audit(since=1003.0)
    assert [e.at for e in since] == [1004.0, 1003.0]
    assert (await store.auth_state.list_audit())[-1].mailbox_id is None
