"""The event loop every gateway process runs on.

Role: one place that decides the loop implementation. uvloop (libuv) is used when it
is installed and the platform has it: the same asyncio API at about half the
per-callback and per-socket cost, which is most of what a mail protocol process does
(bench/bench_smtp.py measured 745 -> 897 messages/s on one SMTP process). Setting
``GATEWAY_EVENT_LOOP=asyncio`` selects the standard library loop instead, e.g. to
rule the loop out while chasing a bug.

Invariant: the code never depends on which loop runs it; the test suite runs the
services in-process on the standard loop and the ``gateway serve`` subprocesses on
uvloop, so both are exercised.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
ENV_LOOP = "GATEWAY_EVENT_LOOP"

log = logging.getLogger("gateway")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop factory, or None for the standard loop."""
    choice = os.environ.get(ENV_LOOP, "auto").strip().lower()
    if choice == "asyncio":
        return None
    if choice not in ("auto", "uvloop"):
        log.warning("%s=%r is neither 'auto', 'uvloop' nor 'asyncio'; using 'auto'",
                    ENV_LOOP, choice)
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            log.warning("%s=uvloop but uvloop is not installed; using asyncio", ENV_LOOP)
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on the chosen loop."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)
