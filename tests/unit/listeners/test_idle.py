"""The connection idle timer shared by SMTP, IMAP and POP3 (gateway.listeners.idle)."""

from __future__ import annotations

import asyncio

import pytest

from gateway.listeners.idle import IdleWatch


async def test_a_wait_that_outlasts_the_idle_time_raises_timeout() -> None:
    watch = IdleWatch()
    loop = asyncio.get_running_loop()
    start = loop.time()
    with pytest.raises(TimeoutError):
        await watch.wait(asyncio.sleep(10), 0.05)
    assert 0.04 <= loop.time() - start < 1.0
    # the task is usable afterwards: not left cancelled
    assert await watch.wait(asyncio.sleep(0, "ok"), 1.0) == "ok"
    watch.close()


async def test_busy_waits_reuse_one_timer_and_never_time_out_early(
        monkeypatch: pytest.MonkeyPatch) -> None:
    watch = IdleWatch()
    loop = asyncio.get_running_loop()
    armed: list[float] = []
    real_call_at = loop.call_at

    def counting_call_at(when, callback, *args, **kw):  # type: ignore[no-untyped-def]
        if getattr(callback, "__self__", None) is watch:  # not asyncio.sleep's timers
            armed.append(when)
        return real_call_at(when, callback, *args, **kw)

    monkeypatch.setattr(loop, "call_at", counting_call_at)
    # 30 commands over about 0.3 s, each well within the 0.1 s idle time
    for _ in range(30):
        await watch.wait(asyncio.sleep(0.01), 0.1)
    watch.close()
    # one timer per idle period that actually elapsed, not one per command
    assert 1 <= len(armed) <= 6


async def test_a_shorter_idle_time_rearms_the_timer() -> None:
    watch = IdleWatch()
    await watch.wait(asyncio.sleep(0), 60.0)  # timer armed for a minute
    loop = asyncio.get_running_loop()
    start = loop.time()
    with pytest.raises(TimeoutError):
        await watch.wait(asyncio.sleep(10), 0.05)
    assert loop.time() - start < 1.0
    watch.close()


async def test_an_outside_cancellation_stays_a_cancellation() -> None:
    watch = IdleWatch()
    task = asyncio.ensure_future(watch.wait(asyncio.sleep(10), 60.0))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    watch.close()


async def test_the_timer_does_not_cancel_a_task_that_is_not_waiting() -> None:
    watch = IdleWatch()
    await watch.wait(asyncio.sleep(0), 0.02)
    await asyncio.sleep(0.08)  # busy elsewhere (sending) past the deadline
    assert await watch.wait(asyncio.sleep(0.01, "read"), 1.0) == "read"
    watch.close()
