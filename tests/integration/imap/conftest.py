"""A real IMAP server on a loopback port for transcript tests (both store engines).

``imap_server`` starts ``protocols.imap.session.handle`` under ``asyncio.start_server``
with a real store, the real AuthService (cheap argon2 parameters) and a self-signed TLS
context; clients (imaplib, aioimaplib, curl) talk to it over real sockets. Blocking
clients run in a thread (``asyncio.to_thread``) while the server runs on the loop.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from passlib.context import CryptContext

from auth.directories.local import LocalDirectory
from auth.hashing import HashRunner
from auth.service import AuthService
from gateway.listeners.stream import ConnectionInfo
from gateway.protocol_settings import ProtocolSettings
from gateway.tls import generate_self_signed
from protocols.imap.session import handle
from protocols.imap.state import ImapContext

CHEAP = CryptContext(schemes=["argon2"], argon2__type="ID", argon2__memory_cost=256,
                     argon2__rounds=1, argon2__parallelism=1)
PASSWORD = "S3cret!pass"
USER = "alice@example.test"


async def _no_sleep(seconds: float) -> None:
    return None


@dataclass
class Server:
    host: str
    port: int
    store: Any
    ctx: ImapContext
    mailbox_id: int
    other_mailbox_id: int
    cert: Path
    policy: ProtocolSettings = field(
        default_factory=lambda: ProtocolSettings("imap", login_type="PlainTextLogin"))

    def set_policy(self, **changes: Any) -> None:
        self.policy = replace(self.policy, **changes)

    async def deliver(self, raw: bytes, *, folder: str = "inbox",
                      mailbox_id: int | None = None, flags: tuple[str, ...] = ()) -> int:
        mid = mailbox_id or self.mailbox_id
        f = await self.store.mail.get_special_folder(mid, folder)
        uid, _ = await self.store.mail.append(mid, f.id, raw, flags=flags)
        return int(uid)

    def client_tls(self) -> ssl.SSLContext:
        c = ssl.create_default_context(cafile=str(self.cert))
        c.check_hostname = False
        return c


@pytest.fixture
async def imap_server(store: Any, tmp_path: Path) -> AsyncIterator[Server]:
    await store.org.create_accepted_domain("example", "example.test")
    alice = await store.org.create_mailbox(
        name="alice", primary_smtp_address=USER, display_name="Alice",
        password_hash=CHEAP.hash(PASSWORD))
    bob = await store.org.create_mailbox(
        name="bob", primary_smtp_address="bob@example.test", password_hash=CHEAP.hash(PASSWORD))
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    generate_self_signed("localhost", cert, key)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    runner = HashRunner(max_workers=2)
    auth = AuthService(LocalDirectory(store.org, runner, settings_ttl=0), store.auth_state,
                       sleep=_no_sleep)
    holder: dict[str, Server] = {}
    ctx = ImapContext(store=store, auth=auth, server_name="mail.example.test",
                      tls_context=tls, policy=lambda: holder["s"].policy)
    counter = 0

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal counter
        counter += 1
        peer = writer.get_extra_info("peername")
        sock = writer.get_extra_info("sockname")
        info = ConnectionInfo(connection_id=f"c-{counter}", listener="imap",
                              local_ip=sock[0], local_port=sock[1], remote_ip=peer[0],
                              remote_port=peer[1], peer_ip=peer[0], proxied=False)
        await handle(ctx, reader, writer, info)

    server = await asyncio.start_server(on_client, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    holder["s"] = Server("127.0.0.1", port, store, ctx, alice.id, bob.id, cert)
    try:
        yield holder["s"]
    finally:
        server.close()
        await server.wait_closed()
        runner.close()


def message(subject: str = "Hello", body: str = "Hi there.\r\n", *,
            sender: str = "Bob <bob@example.test>", to: str = USER,
            extra: str = "") -> bytes:
    return (f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n"
            f"Date: Mon, 7 Feb 1994 21:52:25 -0800\r\nMessage-ID: <{abs(hash(subject))}@x>\r\n"
            f"{extra}MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
            f"{body}").encode()
