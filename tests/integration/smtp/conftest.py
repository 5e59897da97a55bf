"""Harness for SMTP transcripts on real sockets: an organisation in a real store, the
SMTP service on loopback ports, a test CA, and blocking clients (smtplib, swaks, raw
sockets) run in threads so the server keeps serving on the test's event loop."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from auth.directories.local import LocalDirectory
from auth.hashing import HashRunner
from auth.passwords import hash_password
from auth.service import AuthService
from gateway.connectors import ReceiveConnector
from gateway.connectors.ranges import parse_bindings, parse_ip_ranges
from gateway.store import Store, open_store
from protocols.smtp.service import SmtpService

SERVER = "mail1.example.test"
PASSWORD = "correct horse battery staple"
TRUSTED_PROXY = "127.0.0.9"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class TestCA:
    ca_path: Path
    cert_path: Path
    key_path: Path

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.cert_path, self.key_path)
        return ctx

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_path))


def _make_ca(directory: Path) -> TestCA:
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Gateway Test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(days=1))
          .not_valid_after(now + dt.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, SERVER)]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName(SERVER),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                x509.IPAddress(ipaddress.ip_address("127.0.0.50"))]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = TestCA(directory / "ca.pem", directory / "cert.pem", directory / "key.pem")
    paths.ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths.key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return paths


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return _make_ca(tmp_path_factory.mktemp("ca"))


@dataclass
class Harness:
    store: Store
    service: SmtpService
    ca: TestCA
    log_dir: Path
    mailboxes: dict[str, int] = field(default_factory=dict)

    async def connector(self, name: str, bindings: str, ranges: str = "0.0.0.0-255.255.255.255",
                        *, groups: frozenset[str] = frozenset({"AnonymousUsers"}),
                        auth: frozenset[str] = frozenset({"Tls"}), apply: bool = True,
                        **changes: Any) -> ReceiveConnector:
        """Create a connector on this server (tarpit off unless given) and rebind."""
        changes.setdefault("tarpit_interval", 0.0)
        draft = ReceiveConnector(id=0, server=SERVER, name=name, usage="Custom",
                                 bindings=parse_bindings(bindings),
                                 remote_ip_ranges=parse_ip_ranges(ranges),
                                 permission_groups=groups, auth_mechanism=auth)
        created = await self.store.connectors.create_receive_connector(
            replace(draft, **changes))
        if apply:
            await self.apply()
        return created

    async def client_connector(self, name: str, bindings: str,
                               ranges: str = "0.0.0.0-255.255.255.255", **changes: Any
                               ) -> ReceiveConnector:
        """A Client Frontend-like connector (ExchangeUsers, BasicAuthRequireTLS)."""
        return await self.connector(
            name, bindings, ranges, groups=frozenset({"ExchangeUsers"}),
            auth=frozenset({"Tls", "BasicAuth", "BasicAuthRequireTLS", "Integrated"}),
            **changes)

    async def apply(self) -> None:
        await self.service.on_org_change(await self.store.org.version())

    async def inbox(self, address: str) -> list[bytes]:
        """Raw messages in the Inbox of the mailbox with ``address``."""
        mailbox = await self.store.org.get_mailbox(address)
        inbox = await self.store.mail.get_special_folder(mailbox.id, "inbox")
        out = []
        for message in await self.store.mail.fetch(inbox.id, [(1, None)]):
            out.append(await self.store.mail.read_content(message.id))
        return out


async def build_org(store: Store) -> dict[str, int]:
    await store.org.create_accepted_domain("example.test", "example.test")
    hashed = await asyncio.to_thread(hash_password, PASSWORD)
    out = {}
    for name in ("alice", "bob"):
        mb = await store.org.create_mailbox(name=name,
                                            primary_smtp_address=f"{name}@example.test",
                                            password_hash=hashed)
        out[name] = mb.id
    return out


@pytest.fixture
async def harness_factory(tmp_path: Path, test_ca: TestCA
                          ) -> AsyncIterator[Callable[[str], Any]]:
    """``await make(store_url)`` → a running Harness (stopped after the test)."""
    made: list[tuple[Harness, HashRunner]] = []

    async def make(url: str | None = None) -> Harness:
        store = await open_store(url or f"sqlite:///{tmp_path / 'smtp.db'}")
        mailboxes = await build_org(store)
        runner = HashRunner()
        auth = AuthService(LocalDirectory(store.org, runner), store.auth_state)
        log_dir = tmp_path / "protocol-log"
        service = SmtpService(store=store, auth=auth, server_name=SERVER,
                              tls=test_ca.server_context(),
                              trusted_proxies=[f"{TRUSTED_PROXY}/32"], log_dir=log_dir,
                              policy_refresh=0, create_defaults=False)
        await service.start()
        h = Harness(store, service, test_ca, log_dir, mailboxes)
        made.append((h, runner))
        return h

    yield make
    for h, runner in made:
        await h.service.stop(1.0)
        runner.close()
        await h.store.close()


@pytest.fixture
async def harness(harness_factory: Callable[[str | None], Any]) -> Harness:
    return await harness_factory(None)


class RawClient:
    """A line-oriented raw socket client for transcripts smtplib cannot produce."""

    def __init__(self, host: str, port: int, *, source: str | None = None,
                 timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(
            (host, port), timeout=timeout,
            source_address=(source, 0) if source else None)
        self.file = self.sock.makefile("rb")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def reply(self) -> str:
        """One complete (possibly multi-line) reply, lines joined with \\n."""
        lines = []
        while True:
            line = self.file.readline()
            if not line:
                raise ConnectionError("closed")
            text = line.decode().rstrip("\r\n")
            lines.append(text)
            if len(text) < 4 or text[3] != "-":
                return "\n".join(lines)

    def closed(self) -> bool:
        return self.file.readline() == b""

    def close(self) -> None:
        self.file.close()
        self.sock.close()
