"""An SMTP worker process: ``python -m protocols.smtp.worker [settings.toml]``.

Role: a small composition root for one extra SMTP process of a node (see
``protocols.smtp.workers``): settings, store, auth service, the SMTP service on
SO_REUSEPORT sockets, organisation polling, clean stop on SIGTERM, and exit when the
parent node is gone.

Invariants: never creates organisation objects (the node did); never outlives its
parent by more than one poll interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys

from auth.certificates import CertificateMapper
from auth.directories.local import LocalDirectory
from auth.hashing import HashRunner
from auth.service import AuthService
from gateway import eventloop
from gateway.config import Settings, load_settings
from gateway.logsetup import configure_logging
from gateway.relay.service import RelayService
from gateway.store import open_store
from gateway.tls import node_client_auth_context, server_context
from protocols.smtp.auth import load_certificate_der
from protocols.smtp.service import SmtpService

log = logging.getLogger("protocols.smtp.worker")


async def run_worker(settings: Settings) -> None:
    parent = os.getppid()
    store = await open_store(settings.store_url)
    runner = HashRunner()
    try:
        await runner.warm_up()
        auth = AuthService(LocalDirectory(store.org, runner), store.auth_state)
        auth.certificates = CertificateMapper(store.org)  # AUTH EXTERNAL, as in the node
        # Mail routed out is queued with the relay engine here, whole and in one
        # transaction, as in the node's own SMTP service, and this process's relay
        # workers deliver it: claims are leases, so the node's and every worker's
        # relay share the queue without double delivery (as nodes sharing PostgreSQL
        # do), and each process delivers about what it accepted. Left to the node
        # alone, its relay became the bottleneck of every process's mail.
        relay_service = RelayService(store, server_name=settings.server_name)
        relay = relay_service.relay
        service = SmtpService(store=store, auth=auth, server_name=settings.server_name,
                              relay=relay,
                              tls=server_context(settings.tls),
                              tls_client_auth=node_client_auth_context(settings),
                              server_certificate=await asyncio.to_thread(
                                  load_certificate_der, settings.tls.certificate),
                              trusted_proxies=settings.trusted_proxies,
                              log_dir=settings.data_dir / "logs" / "ProtocolLog"
                              / "SmtpReceive", create_defaults=False, worker=True)
        await service.start()
        await relay_service.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        version = await store.org.version()
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), settings.org_poll_seconds)
            if os.getppid() != parent:
                break
            try:
                current = await store.org.version()
            except Exception as exc:
                log.warning("smtp worker: cannot read the organisation version: %s", exc)
                continue
            if current != version:
                version = current
                await relay_service.on_org_change(current)
                await service.on_org_change(current)
        await service.stop(settings.shutdown_grace_seconds)
        await relay_service.stop(settings.shutdown_grace_seconds)
    finally:
        runner.close()
        await store.close()


def main(argv: list[str]) -> int:
    settings = load_settings(argv[0] if argv else None)
    configure_logging(settings.logging)
    eventloop.run(run_worker(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
