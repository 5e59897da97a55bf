"""Crash safety: ``kill -9`` of delivering processes, then restart. Every acknowledged
message reaches each local mailbox exactly once and the sink at least once; on
PostgreSQL two workers at once never deliver twice into a mailbox."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from gateway.store import open_store
from gateway.store.send_connectors import AddressSpace
from tests.integration.relay.conftest import Sink
from tests.unit.relay.helpers import inbox_messages, make_relay, organisation, raw

ROOT = Path(__file__).resolve().parents[3]
N = 60

pytestmark = pytest.mark.slow


def _worker(url: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-m", "tests.integration.relay.worker_proc", url],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == b"ready"
    return proc


def _kill(proc: subprocess.Popen[bytes]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)


async def _wait_empty(store: Any, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await store.queue.list_messages() == []:
            return
        await asyncio.sleep(0.2)
    left = await store.queue.list_messages()
    raise AssertionError(f"the queue did not drain: {left[:3]}")


async def _setup(store: Any, sink: Sink) -> dict[str, Any]:
    boxes = await organisation(store)
    await store.send_connectors.create(
        name="Sink", address_spaces=(AddressSpace("*", 1),),
        smart_hosts=(f"sink.test:{sink.port}",), dns_routing_enabled=False)
    relay = make_relay(store)
    for n in range(N):
        await relay.submit("bob@example.test",
                           ["alice@example.test", "carol@example.test", f"r{n}@outlook.test"],
                           raw(f"crash{n}", body=(b"x" * 76 + b"\r\n") * 250))
    return boxes


async def _check(store: Any, boxes: dict[str, Any], sink: Sink) -> None:
    for name in ("alice", "carol"):
        subjects = sorted(m.split(b"Subject: ")[1].split(b"\r\n")[0]
                          for m in await inbox_messages(store, boxes[name].id))
        assert subjects == sorted(f"crash{n}".encode() for n in range(N)), name
    remote = {r for m in sink.handler.messages for r in m.rcpt_tos}
    assert remote == {f"r{n}@outlook.test" for n in range(N)}


async def test_kill_9_during_delivery_then_restart(store_url: str, sink: Sink) -> None:
    store = await open_store(store_url)
    try:
        boxes = await _setup(store, sink)
        for _ in range(3):
            proc = _worker(store_url)
            await asyncio.sleep(0.4)
            _kill(proc)
        proc = _worker(store_url)
        try:
            await _wait_empty(store)
        finally:
            _kill(proc)
        await _check(store, boxes, sink)
    finally:
        await store.close()


@pytest.mark.postgres
async def test_two_workers_share_the_queue(store_url: str, sink: Sink) -> None:
    if not store_url.startswith("postgresql"):
        pytest.skip("several delivering processes share PostgreSQL")
    store = await open_store(store_url)
    try:
        boxes = await _setup(store, sink)
        procs = [_worker(store_url), _worker(store_url)]
        await asyncio.sleep(0.3)
        _kill(procs[0])
        try:
            await _wait_empty(store)
        finally:
            _kill(procs[1])
        await _check(store, boxes, sink)
    finally:
        await store.close()
