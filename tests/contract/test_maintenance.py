"""Housekeeping on both engines: expired lockout counters and web sessions go, live
ones stay (gateway/maintenance.py)."""

from __future__ import annotations

import hashlib

from auth.throttle import ThrottlePolicy
from gateway.maintenance import MaintenanceService

DAY = 86400.0


async def test_prune_keeps_live_counters_and_locks(store):
    now = 1_000_000_000.0
    old = now - 40 * DAY
    # An expired counter, an expired window still holding a lock, and a fresh one.
    await store.auth_state.record_failure("src:10.0.0.1", now=old, window=900, lock_for=0,
                                          threshold=5)
    await store.auth_state.record_failure("src:10.0.0.2", now=old, window=900,
                                          lock_for=50 * DAY, threshold=1)
    await store.auth_state.record_failure("src:10.0.0.3", now=now - 60, window=900,
                                          lock_for=0, threshold=5)
    removed = await store.auth_state.prune(older_than=now - 30 * DAY, now=now)
    assert removed == 1
    left = await store.auth_state.get_counters(["src:10.0.0.1", "src:10.0.0.2",
                                                "src:10.0.0.3"])
    assert set(left) == {"src:10.0.0.2", "src:10.0.0.3"}


async def test_maintenance_pass_removes_expired_sessions_and_counters(store):
    mailbox = await store.org.create_mailbox(name="carol",
                                             primary_smtp_address="carol@example.test")
    now = 2_000_000_000.0
    policy = ThrottlePolicy()
    for name, created, idle in (("stale", now - 7200, 600), ("live", now - 60, 600)):
        await store.sessions.create(hashlib.sha256(name.encode()).hexdigest(),
                                    mailbox_id=mailbox.id, principal={"name": "carol"},
                                    protocol="owa", now=created, idle_timeout=idle,
                                    absolute_timeout=43200)
    await store.auth_state.record_failure("src:192.0.2.1", now=now - policy.retention - 1,
                                          window=900, lock_for=0, threshold=5)
    service = MaintenanceService(store, policy=policy, clock=lambda: now)
    assert await service.run_once() == {"lockout_counters": 1, "web_sessions": 1}
    assert await service.run_once() == {"lockout_counters": 0, "web_sessions": 0}
    live = await store.sessions.list_for_mailbox(mailbox.id)
    assert len(live) == 1
    assert await store.sessions.get(hashlib.sha256(b"live").hexdigest()) is not None
