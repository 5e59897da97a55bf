"""A real POP3 service on loopback over the real store (both engines), for poplib."""

from __future__ import annotations

import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from passlib.context import CryptContext

from auth.directories.local import LocalDirectory
from auth.hashing import HashRunner
from auth.service import AuthService
from gateway.config import Endpoint, TlsSettings
from gateway.protocol_settings import to_section
from gateway.tls import generate_self_signed, server_context
from protocols.pop3.service import Pop3Service

CHEAP = CryptContext(schemes=["argon2"], argon2__type="ID", argon2__memory_cost=256,
                     argon2__rounds=1, argon2__parallelism=1)
PASSWORD = "S3cret!pass"
USER = "alice@example.test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def no_sleep(seconds: float) -> None:
    return None


@dataclass
class Pop3Env:
    store: Any
    service: Pop3Service
    port: int
    ssl_port: int
    client_tls: ssl.SSLContext
    mailbox_id: int
    inbox_id: int
    cert_path: Path

    async def deliver(self, raw: bytes, mailbox_id: int | None = None) -> int:
        box = self.mailbox_id if mailbox_id is None else mailbox_id
        inbox = await self.store.mail.get_special_folder(box, "inbox")
        uid, _id = await self.store.mail.append(box, inbox.id, raw)
        return int(uid)

    async def set_settings(self, **values: object) -> None:
        await self.store.org.set_settings("pop", to_section(values))
        await self.service.on_org_change(await self.store.org.version())


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """One self-signed certificate for the session (key generation is slow)."""
    d = tmp_path_factory.mktemp("pop3-tls")
    cert, key = d / "cert.pem", d / "key.pem"
    generate_self_signed("localhost", cert, key)
    return cert, key


@pytest.fixture
def tls_pair(tls_files: tuple[Path, Path]) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    cert, key = tls_files
    return server_context(TlsSettings(cert, key, False)), ssl.create_default_context(
        cafile=str(cert))


@pytest.fixture
async def pop3(store: Any, tls_pair: tuple[ssl.SSLContext, ssl.SSLContext],
               tls_files: tuple[Path, Path]) -> AsyncIterator[Pop3Env]:
    await store.org.create_accepted_domain("example", "example.test")
    box = await store.org.create_mailbox(name="alice", primary_smtp_address=USER,
                                         password_hash=CHEAP.hash(PASSWORD))
    await store.org.create_mailbox(name="bob", primary_smtp_address="bob@example.test",
                                   password_hash=CHEAP.hash(PASSWORD))
    inbox = await store.mail.get_special_folder(box.id, "inbox")
    runner = HashRunner(max_workers=2)
    auth = AuthService(LocalDirectory(store.org, runner, settings_ttl=0), store.auth_state,
                       sleep=no_sleep)
    port, ssl_port = free_port(), free_port()
    bindings = {"pop3": (Endpoint("127.0.0.1", port),),
                "pop3s": (Endpoint("127.0.0.1", ssl_port),)}
    service = Pop3Service(org=store.org, mail=store.mail, auth=auth, tls=tls_pair[0],
                          node_bindings=bindings)
    await service.start()
    try:
        yield Pop3Env(store, service, port, ssl_port, tls_pair[1], box.id, inbox.id,
                      tls_files[0])
    finally:
        await service.stop(1)
        runner.close()
