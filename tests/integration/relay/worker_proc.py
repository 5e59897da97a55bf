"""A relay worker process for the crash tests: ``python -m
tests.integration.relay.worker_proc <store url> <sink port>`` runs the queue worker
with a 1-second lease until killed."""

from __future__ import annotations

import asyncio
import sys
from dataclasses import replace

from gateway.relay import Relay
from gateway.relay.routing import StaticResolver
from gateway.store import open_store
from tests.unit.relay.helpers import FAST


async def main(url: str) -> None:
    store = await open_store(url)
    relay = Relay(store, server_name="worker.example.test",
                  resolver=StaticResolver(hosts={"sink.test": ["127.0.0.1"]}),
                  settings=replace(FAST, lease_seconds=1.0, max_concurrent_deliveries=8))
    print("ready", flush=True)
    await relay.run()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
