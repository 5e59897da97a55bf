"""Loopback SMTP peers for the relay tests: an aiosmtpd sink with injected faults
(per-recipient 4xx/5xx, end-of-data replies, STARTTLS, AUTH) and a raw scripted peer
(drop in mid-DATA, slow greeting, recording what arrived in which read)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.integration.smtp.conftest import harness_factory, test_ca  # noqa: F401
from tests.pki.ca import TestPki


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    tls: bool
    authenticated: bool


@dataclass
class SinkHandler:
    """Faults: recipients whose local part starts with ``temp`` get 451, ``perm`` get
    550; ``data_reply`` replaces the end-of-data reply once per entry."""

    messages: list[Received] = field(default_factory=list)
    data_replies: list[str] = field(default_factory=list)
    sessions: int = 0
    ehlo_extra: tuple[str, ...] = ("250-PIPELINING",)

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str,
                          responses: list[str]) -> list[str]:
        session.host_name = hostname
        if not getattr(session, "counted", False):
            session.counted = True
            self.sessions += 1
        return [responses[0], *self.ehlo_extra, *responses[1:]]

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        local = address.partition("@")[0].lower()
        if local.startswith("temp"):
            return "451 4.2.0 try again later"
        if local.startswith("perm"):
            return "550 5.1.1 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_replies:
            return self.data_replies.pop(0)
        self.messages.append(Received(
            envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content,
            session.ssl is not None, bool(session.authenticated)))
        return "250 2.0.0 queued as sink"


def _authenticator(server: Any, session: Any, envelope: Any, mechanism: str,
                   auth_data: Any) -> AuthResult:
    if isinstance(auth_data, LoginPassword) and auth_data.login == b"relayuser" and \
            auth_data.password == b"s3cret":
        return AuthResult(success=True, auth_data=auth_data)
    return AuthResult(success=False, handled=False)


@dataclass
class Sink:
    handler: SinkHandler
    port: int
    controller: Controller


@pytest.fixture(scope="session")
def sink_tls(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    pki = TestPki(Path(tmp_path_factory.mktemp("sink-pki")))
    ca = pki.ca("Sink CA")
    cert = pki.issue(ca, x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sink.test")]),
                     file_name="sink", sans=[x509.DNSName("sink.test")],
                     eku=(ExtendedKeyUsageOID.SERVER_AUTH,))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert.cert_file, cert.key_file)
    return ctx


def _start(handler: SinkHandler, **kw: Any) -> Sink:
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port,
                            server_hostname="sink.test", **kw)
    controller.start()
    return Sink(handler, port, controller)


@pytest.fixture
def sink() -> Iterator[Sink]:
    s = _start(SinkHandler())
    yield s
    s.controller.stop()


@pytest.fixture
def tls_sink(sink_tls: ssl.SSLContext) -> Iterator[Sink]:
    s = _start(SinkHandler(), tls_context=sink_tls, authenticator=_authenticator,
               auth_require_tls=True)
    yield s
    s.controller.stop()


@dataclass
class RawPeer:
    """A scripted SMTP peer: ``mode`` "drop-in-data" closes the connection after the
    first chunk of message data; "slow" never greets; "bad-tls" offers STARTTLS and
    answers the handshake with garbage; "record" behaves and records each read."""

    mode: str
    port: int = 0
    reads: list[bytes] = field(default_factory=list)
    connections: int = 0
    completed: int = 0


async def _serve_raw(peer: RawPeer, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter) -> None:
    peer.connections += 1
    try:
        if peer.mode == "slow":
            await asyncio.sleep(30)
            return
        writer.write(b"220 raw.test ESMTP\r\n")
        in_data = False
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                return
            peer.reads.append(chunk)
            if in_data:
                if peer.mode == "drop-in-data":
                    return
                if chunk.endswith(b"\r\n.\r\n"):
                    in_data = False
                    peer.completed += 1
                    writer.write(b"250 2.0.0 ok\r\n")
                continue
            out = b""
            for line in chunk.split(b"\r\n"):
                verb = line[:4].upper()
                if verb == b"EHLO":
                    tls = b"250-STARTTLS\r\n" if peer.mode == "bad-tls" else b""
                    out += b"250-raw.test\r\n" + tls + b"250-PIPELINING\r\n250 8BITMIME\r\n"
                elif verb == b"STAR":  # STARTTLS, then no TLS at all: a broken peer
                    writer.write(out + b"220 go ahead\r\n\x15\x03\x01\x00\x02garbage\r\n")
                    await writer.drain()
                    return
                elif verb in (b"MAIL", b"RCPT", b"RSET"):
                    out += b"250 ok\r\n"
                elif verb == b"DATA":
                    out += b"354 go on\r\n"
                    in_data = True
                elif verb == b"QUIT":
                    out += b"221 bye\r\n"
            writer.write(out)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


@pytest.fixture
async def raw_peer(request: pytest.FixtureRequest) -> AsyncIterator[RawPeer]:
    peer = RawPeer(getattr(request, "param", "record"))
    server = await asyncio.start_server(lambda r, w: _serve_raw(peer, r, w), "127.0.0.1", 0)
    peer.port = server.sockets[0].getsockname()[1]
    yield peer
    server.close()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(server.wait_closed(), 2)
