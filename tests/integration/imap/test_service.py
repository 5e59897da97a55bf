"""The IMAP service as the node runs it: listeners from the organisation's ImapSettings
(plain + implicit TLS), login type and bindings changed without a restart."""

from __future__ import annotations

import asyncio
import imaplib
import socket
import ssl
from pathlib import Path
from typing import Any

import pytest

from auth.directories.local import LocalDirectory
from auth.hashing import HashRunner
from auth.service import AuthService
from gateway.config import parse_endpoint
from gateway.tls import generate_self_signed
from protocols.imap.service import ImapService
from tests.integration.imap.conftest import CHEAP, PASSWORD, USER


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
async def test_service_listeners_follow_imap_settings(store: Any, tmp_path: Path) -> None:
    await store.org.create_accepted_domain("example", "example.test")
    await store.org.create_mailbox(name="alice", primary_smtp_address=USER,
                                   password_hash=CHEAP.hash(PASSWORD))
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    generate_self_signed("localhost", cert, key)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    client_tls = ssl.create_default_context(cafile=str(cert))
    client_tls.check_hostname = False
    plain, secure, moved = free_port(), free_port(), free_port()
    bindings = {"imap": (parse_endpoint(f"127.0.0.1:{plain}"),),
                "imaps": (parse_endpoint(f"127.0.0.1:{secure}"),)}
    runner = HashRunner(max_workers=1)
    auth = AuthService(LocalDirectory(store.org, runner, settings_ttl=0), store.auth_state)
    service = ImapService(store=store, auth=auth, server_name="mail.example.test", tls=tls,
                          node_bindings=bindings)
    await service.start()
    try:
        assert sorted(service.describe()) == sorted(
            [f"imap: 127.0.0.1:{plain}", f"imaps: 127.0.0.1:{secure} (implicit TLS)"])

        def over_tls() -> list[str]:
            m = imaplib.IMAP4_SSL("127.0.0.1", secure, ssl_context=client_tls, timeout=10)
            m.login(USER, PASSWORD)
            m.select("INBOX")
            m.logout()
            plain_client = imaplib.IMAP4("127.0.0.1", plain, timeout=10)
            caps = list(plain_client.capabilities)
            plain_client.shutdown()
            return caps
        caps = await asyncio.to_thread(over_tls)
        assert "LOGINDISABLED" in caps and "STARTTLS" in caps  # SecureLogin default

        await store.org.set_settings("imap", {
            "login_type": "PlainTextLogin",
            "unencrypted_or_tls_bindings": [f"127.0.0.1:{moved}"]})
        await service.on_org_change(await store.org.version())

        def after_change() -> None:
            m = imaplib.IMAP4("127.0.0.1", moved, timeout=10)
            assert "AUTH=PLAIN" in m.capabilities
            m.login(USER, PASSWORD)
            m.logout()
            with pytest.raises(OSError):
                imaplib.IMAP4("127.0.0.1", plain, timeout=5)
        await asyncio.to_thread(after_change)
    finally:
        await service.stop(1)
        runner.close()
