"""SASL EXTERNAL (RFC 4422 appendix A) end to end on a real TLS socket.

A verified client certificate travels listener → ``ConnectionInfo`` →
``auth.mechanisms.external`` → ``AuthService``. The line protocol here is the smallest
IMAP a real client accepts (greeting, CAPABILITY, AUTHENTICATE, LIST, LOGOUT), driven
by curl (``--login-options AUTH=EXTERNAL --cert``) and by a Python ssl client; the
real IMAP, POP3 and SMTP sessions wire EXTERNAL the same way (docs/client-certificates.md).
"""

from __future__ import annotations

import asyncio
import base64
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from auth.certificates import CertificateMapper
from auth.directories.local import LocalDirectory
from auth.errors import AuthenticationFailed, MechanismCancelled, MechanismError
from auth.hashing import HashRunner
from auth.mechanisms.external import external_exchange, offer_external
from auth.mechanisms.sasl import SendChallenge
from auth.service import AuthService
from gateway.config import Endpoint, TlsSettings
from gateway.listeners import ConnectionInfo, ListenerSpec, StreamListenerSet
from gateway.store import open_store
from gateway.tls import ClientCertSettings, client_auth_context
from tests.pki import TestPki

pytestmark = pytest.mark.slow

ALICE = "alice@example.test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def imap_handler(auth: AuthService, log: list[str]) -> Any:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     conn: ConnectionInfo) -> None:
        async def send(line: str) -> None:
            writer.write(line.encode() + b"\r\n")
            await writer.drain()

        caps = "IMAP4rev1 SASL-IR" + (" AUTH=EXTERNAL" if offer_external(
            conn.client_certificate) else "")
        await send(f"* OK [CAPABILITY {caps}] test server ready")
        while line := await reader.readline():
            tag, _, rest = line.decode().rstrip("\r\n").partition(" ")
            command, _, args = rest.partition(" ")
            command = command.upper()
            if command == "CAPABILITY":
                await send(f"* CAPABILITY {caps}")
                await send(f"{tag} OK CAPABILITY completed")
            elif command == "AUTHENTICATE":
                mech, _, ir = args.partition(" ")
                if mech.upper() != "EXTERNAL" or not offer_external(conn.client_certificate):
                    await send(f"{tag} NO unsupported mechanism")
                    continue
                exchange = external_exchange(conn.client_certificate)
                try:
                    step = exchange.begin(ir or None)
                    while isinstance(step, SendChallenge):
                        await send(f"+ {step.text}")
                        step = exchange.feed(await reader.readline())
                    principal = await auth.authenticate(
                        step.credential, protocol="imap", mechanism="EXTERNAL",
                        source_ip=conn.remote_ip)
                except (MechanismError, MechanismCancelled):
                    await send(f"{tag} BAD authentication exchange")
                    continue
                except AuthenticationFailed:
                    await send(f"{tag} NO [AUTHENTICATIONFAILED] Authentication failed")
                    continue
                log.append(principal.primary_smtp_address or "")
                await send(f"{tag} OK authenticated as {principal.primary_smtp_address}")
            elif command == "LIST":
                await send('* LIST () "/" INBOX')
                await send(f"{tag} OK LIST completed")
            elif command == "LOGOUT":
                await send("* BYE")
                await send(f"{tag} OK LOGOUT completed")
                return
            else:
                await send(f"{tag} BAD unknown command")

    return handle


async def _nosleep(_s: float) -> None:
    return None


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Any]:
    pki = TestPki(tmp_path / "pki")
    server_ca, client_ca = pki.ca("Server CA"), pki.ca("Client CA")
    server_cert = pki.server(server_ca)
    alice = pki.client(client_ca, "alice", upn=ALICE)
    stranger = pki.client(client_ca, "stranger", email="nobody@example.test")
    store = await open_store(f"sqlite:///{tmp_path / 'store.db'}")
    await store.org.create_accepted_domain("example", "example.test")
    await store.org.create_mailbox(name="alice", primary_smtp_address=ALICE)
    await store.org.create_mailbox(name="bob", primary_smtp_address="bob@example.test")
    runner = HashRunner(max_workers=1)
    auth = AuthService(LocalDirectory(store.org, runner), store.auth_state, sleep=_nosleep)
    auth.certificates = CertificateMapper(store.org)
    ctx = client_auth_context(
        TlsSettings(server_cert.cert_file, server_cert.key_file, False),
        ClientCertSettings(ca_file=client_ca.cert_file, crl_file=None, require=False))
    logins: list[str] = []
    listeners = StreamListenerSet("imap", tls_context=ctx)
    port = free_port()
    await listeners.apply([ListenerSpec("imaps", Endpoint("127.0.0.1", port), True,
                                        imap_handler(auth, logins))])
    yield {"port": port, "ca": server_ca, "alice": alice, "stranger": stranger,
           "logins": logins, "store": store}
    await listeners.stop(1)
    runner.close()
    await store.close()


async def curl_imap(port: int, ca: Path, cert: Any | None, user: str | None = None
                    ) -> tuple[int, str]:
    args = ["curl", "-sS", "-v", "--max-time", "10", "--cacert", str(ca),
            "--login-options", "AUTH=EXTERNAL"]
    if cert is not None:
        args += ["--cert", str(cert.cert_file), "--key", str(cert.key_file)]
    if user is not None:
        args += ["-u", f"{user}:"]
    proc = await asyncio.create_subprocess_exec(
        *args, f"imaps://localhost:{port}/", stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    return proc.returncode or 0, (out + err).decode(errors="replace")


async def test_curl_authenticates_with_external(server: Any) -> None:
    code, transcript = await curl_imap(server["port"], server["ca"].cert_file,
                                       server["alice"])
    assert code == 0, transcript
    assert "AUTHENTICATE EXTERNAL" in transcript and "OK authenticated as " + ALICE \
        in transcript
    assert server["logins"] == [ALICE]
    [event] = await server["store"].auth_state.list_audit(limit=1)
    assert (event.event, event.protocol, event.mechanism) == ("success", "imap", "EXTERNAL")


async def test_curl_with_authzid_of_someone_else_is_refused(server: Any) -> None:
    code, transcript = await curl_imap(server["port"], server["ca"].cert_file,
                                       server["alice"], user="bob@example.test")
    assert code != 0 and "AUTHENTICATIONFAILED" in transcript
    code, transcript = await curl_imap(server["port"], server["ca"].cert_file,
                                       server["alice"], user=ALICE)
    assert code == 0, transcript


async def test_external_not_offered_without_a_certificate(server: Any) -> None:
    _code, transcript = await curl_imap(server["port"], server["ca"].cert_file, None)
    greeting = next(line for line in transcript.splitlines() if "* OK" in line)
    assert "AUTH=EXTERNAL" not in greeting and "SASL-IR" in greeting
    assert "AUTHENTICATE" not in transcript
    assert server["logins"] == []


async def test_python_client_transcript(server: Any) -> None:
    """Without SASL-IR: an empty challenge, then the (empty) authzid; an unmapped
    certificate gets NO like any failure."""
    async def session(cert: Any) -> list[str]:
        ctx = cert.client_context(server["ca"].cert_file)
        reader, writer = await asyncio.open_connection("127.0.0.1", server["port"], ssl=ctx,
                                                       server_hostname="localhost")
        lines = [(await reader.readline()).decode().strip()]
        writer.write(b"a1 AUTHENTICATE EXTERNAL\r\n")
        lines.append((await reader.readline()).decode().strip())
        writer.write(b"\r\n")
        lines.append((await reader.readline()).decode().strip())
        writer.write(b"a2 AUTHENTICATE EXTERNAL " + base64.b64encode(b"x\x00y") + b"\r\n")
        lines.append((await reader.readline()).decode().strip())
        writer.write(b"a3 LOGOUT\r\n")
        await writer.drain()
        writer.close()
        return lines

    ok = await session(server["alice"])
    assert "AUTH=EXTERNAL" in ok[0]
    assert ok[1] == "+"  # RFC 4422 A.2: empty challenge
    assert ok[2] == f"a1 OK authenticated as {ALICE}"
    assert ok[3].startswith("a2 BAD")  # NUL in the authzid
    refused = await session(server["stranger"])
    assert refused[2] == "a1 NO [AUTHENTICATIONFAILED] Authentication failed"
