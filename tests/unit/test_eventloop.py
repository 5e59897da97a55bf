"""gateway.eventloop: the loop choice and that a coroutine runs to its result."""

from __future__ import annotations

import asyncio

import pytest

from gateway import eventloop


async def _loop_type() -> str:
    await asyncio.sleep(0)
    return type(asyncio.get_running_loop()).__module__


def test_default_runs_on_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("uvloop")
    monkeypatch.delenv(eventloop.ENV_LOOP, raising=False)
    assert eventloop.run(_loop_type()).startswith("uvloop")


def test_asyncio_chosen_by_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(eventloop.ENV_LOOP, "asyncio")
    assert eventloop.loop_factory() is None
    assert eventloop.run(_loop_type()).startswith("asyncio")


def test_unknown_choice_warns_and_uses_default(monkeypatch: pytest.MonkeyPatch,
                                               caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv(eventloop.ENV_LOOP, "tokio")
    eventloop.loop_factory()
    assert "neither" in caplog.text
