"""Client certificates over real TLS sockets: the HTTPS hand-over to the application
(uvicorn does not pass the certificate on; gateway.http.tls does), mapping to a
mailbox through the AuthService, and the TLS policy (request / require / wrong CA /
expired / revoked / wrong EKU), with curl and Python ssl clients.

Material comes from tests.pki: a server CA, a client CA with a CRL, and a rogue CA.
"""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import gateway.tls as gtls
from auth.certificates import CertificateAuthenticator, CertificateMapper
from auth.directories.local import LocalDirectory
from auth.errors import AuthenticationFailed
from auth.hashing import HashRunner
from auth.service import AuthService
from gateway.config import Endpoint, TlsSettings, settings_from_mapping
from gateway.errors import ConfigError
from gateway.http.client_cert import ClientCertAuth, certificate_principal
from gateway.http.server import HttpService
from gateway.http.tls import client_certificate_der
from gateway.store import Store, open_store
from gateway.tls import ClientCertSettings, client_auth_context, node_client_auth_context
from tests.pki import Issued, TestCa, TestPki
from tests.pki.clients import HttpsResult, curl_get, python_get

pytestmark = pytest.mark.slow

ALICE = "alice@example.test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Material:
    pki: TestPki
    server_ca: TestCa
    client_ca: TestCa
    rogue_ca: TestCa
    server: Issued
    alice: Issued
    expired: Issued
    revoked: Issued
    server_eku: Issued
    no_eku: Issued
    rogue: Issued
    crl: Path

    @property
    def tls(self) -> TlsSettings:
        return TlsSettings(certificate=self.server.cert_file,
                           private_key=self.server.key_file, generate_self_signed=False)

    def context(self, *, require: bool = False, crl: bool = True) -> ssl.SSLContext:
        return client_auth_context(self.tls, ClientCertSettings(
            ca_file=self.client_ca.cert_file, crl_file=self.crl if crl else None,
            require=require))

    def client(self, who: Issued | None) -> ssl.SSLContext:
        if who is None:
            return ssl.create_default_context(cafile=str(self.server_ca.cert_file))
        return who.client_context(self.server_ca.cert_file)


@pytest.fixture(scope="module")
def material(tmp_path_factory: pytest.TempPathFactory) -> Material:
    pki = TestPki(Path(tmp_path_factory.mktemp("pki")))
    server_ca, client_ca = pki.ca("Server CA"), pki.ca("Client CA")
    rogue_ca = pki.ca("Rogue CA")
    revoked = pki.client(client_ca, "revoked", email=ALICE)
    return Material(
        pki=pki, server_ca=server_ca, client_ca=client_ca, rogue_ca=rogue_ca,
        server=pki.server(server_ca),
        alice=pki.client(client_ca, "alice", email=ALICE),
        expired=pki.client(client_ca, "expired", email=ALICE, expired=True),
        revoked=revoked,
        server_eku=pki.client(client_ca, "server-eku", email=ALICE,
                              eku=(ExtendedKeyUsageOID.SERVER_AUTH,)),
        no_eku=pki.client(client_ca, "no-eku", email=ALICE, eku=None),
        rogue=pki.client(rogue_ca, "rogue", email=ALICE),
        crl=pki.write_crl(client_ca, revoked=[revoked]))


@dataclass
class Site:
    port: int
    store: Store
    service: AuthService

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}"


def make_app(authn: CertificateAuthenticator) -> Starlette:
    """What ActiveSync / web mail will do: read the certificate, map it, answer."""

    async def whoami(request: Request) -> JSONResponse:
        der = client_certificate_der(request.scope)
        if der is None:
            return JSONResponse({"error": "no certificate"}, status_code=401)
        try:
            principal = await authn.authenticate(
                der, protocol="activesync", source_ip=request.client.host
                if request.client else "")
        except AuthenticationFailed:
            return JSONResponse({"error": "refused"}, status_code=403)
        tls = request.scope["extensions"]["tls"]
        return JSONResponse({"mailbox": principal.primary_smtp_address,
                             "name": tls["client_cert_name"],
                             "chain": len(tls["client_cert_chain"]),
                             "tls_version": tls["tls_version"]})

    async def eas(request: Request) -> JSONResponse:
        """ActiveSync's ClientCertAuth, per virtual directory (query ?mode=...)."""
        mode = cast(ClientCertAuth, request.query_params.get("mode", "Ignore"))
        try:
            principal = await certificate_principal(request.scope, authn, mode=mode,
                                                    protocol="activesync")
        except AuthenticationFailed:
            return JSONResponse({"error": "certificate required"}, status_code=403)
        return JSONResponse({"by_certificate": principal.primary_smtp_address
                             if principal else None})

    return Starlette(routes=[Route("/whoami", whoami), Route("/eas", eas)])


async def _nosleep(_s: float) -> None:
    return None


@pytest.fixture
async def site_factory(material: Material, tmp_path: Path) -> AsyncIterator[Any]:
    store = await open_store(f"sqlite:///{tmp_path / 'store.db'}")
    await store.org.create_accepted_domain("example", "example.test")
    await store.org.create_mailbox(name="alice", primary_smtp_address=ALICE)
    runner = HashRunner(max_workers=1)
    service = AuthService(LocalDirectory(store.org, runner), store.auth_state,
                          sleep=_nosleep)
    service.certificates = CertificateMapper(store.org)
    started: list[HttpService] = []

    async def start(ctx: ssl.SSLContext | None) -> Site:
        port = free_port()
        http = HttpService("https", make_app(CertificateAuthenticator(service, cache_ttl=0)),
                           (Endpoint("127.0.0.1", port),), tls=ctx)
        await http.start()
        started.append(http)
        return Site(port, store, service)

    yield start
    for http in started:
        await http.stop(1)
    runner.close()
    await store.close()


def refused(result: HttpsResult) -> bool:
    """The TLS handshake failed (no HTTP status at all); the reason is in the error."""
    if result.error is None or result.status is not None:
        return False
    return any(word in result.error.lower() for word in (
        "alert", "certificate", "ssl", "tls", "closed", "reset", "curl exit"))


async def test_optional_mode_hands_the_certificate_to_the_application(
        material: Material, site_factory: Any) -> None:
    site = await site_factory(material.context())
    # Python ssl client with a certificate
    ok = await python_get(site.port, "/whoami", material.client(material.alice))
    assert ok.status == 200, ok
    assert ok.json() == {"mailbox": ALICE, "name": "CN=alice", "chain": 1,
                         "tls_version": 0x0304}
    # curl --cert
    cok = await curl_get(site.url + "/whoami", cacert=material.server_ca.cert_file,
                         cert=material.alice.cert_file, key=material.alice.key_file)
    assert cok.status == 200 and cok.json()["mailbox"] == ALICE, cok
    # absent: the handshake succeeds, the application sees no certificate
    none = await python_get(site.port, "/whoami", material.client(None))
    assert none.status == 401
    cnone = await curl_get(site.url + "/whoami", cacert=material.server_ca.cert_file)
    assert cnone.status == 401
    # TLS 1.2 too
    ctx12 = material.client(material.alice)
    ctx12.maximum_version = ssl.TLSVersion.TLSv1_2
    old = await python_get(site.port, "/whoami", ctx12)
    assert old.status == 200 and old.json()["tls_version"] == 0x0303


async def test_required_mode_refuses_handshakes_without_a_certificate(
        material: Material, site_factory: Any) -> None:
    site = await site_factory(material.context(require=True))
    assert refused(await python_get(site.port, "/whoami", material.client(None)))
    assert refused(await curl_get(site.url + "/whoami", cacert=material.server_ca.cert_file))
    ok = await curl_get(site.url + "/whoami", cacert=material.server_ca.cert_file,
                        cert=material.alice.cert_file, key=material.alice.key_file)
    assert ok.status == 200


@pytest.mark.parametrize("who", ["rogue", "expired", "revoked", "server_eku"])
async def test_bad_certificates_fail_the_handshake(material: Material, site_factory: Any,
                                                   who: str) -> None:
    """Wrong CA, expired, revoked by the CRL, EKU without clientAuth: OpenSSL refuses
    them in the handshake, in optional mode too (a certificate sent must verify)."""
    site = await site_factory(material.context())
    cert: Issued = getattr(material, who)
    assert refused(await python_get(site.port, "/whoami", material.client(cert)))
    assert refused(await curl_get(site.url + "/whoami", cacert=material.server_ca.cert_file,
                                  cert=cert.cert_file, key=cert.key_file))
    # ... and the server still serves good clients afterwards
    assert (await python_get(site.port, "/whoami", material.client(material.alice))).status \
        == 200


async def test_without_crl_a_revoked_certificate_passes_tls(
        material: Material, site_factory: Any) -> None:
    """Shows the CRL test above can fail: the same certificate without a CRL verifies."""
    site = await site_factory(material.context(crl=False))
    res = await python_get(site.port, "/whoami", material.client(material.revoked))
    assert res.status == 200


async def test_certificate_without_eku_passes_tls_but_is_not_mapped(
        material: Material, site_factory: Any) -> None:
    """RFC 5280 lets a certificate without EKU serve any purpose, so TLS accepts it;
    the gateway insists on clientAuth and refuses the login, with an audit record."""
    site = await site_factory(material.context())
    res = await python_get(site.port, "/whoami", material.client(material.no_eku))
    assert res.status == 403
    [event] = await site.store.auth_state.list_audit(limit=1)
    assert "clientAuth" in event.reason and event.outcome == "failure"


async def test_crl_file_is_reloaded_when_it_changes(material: Material, site_factory: Any,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    monkeypatch.setattr(gtls, "CRL_CHECK_INTERVAL", 0.0)
    crl = tmp_path / "live.crl.pem"
    crl.write_bytes(material.crl.read_bytes())
    ctx = client_auth_context(material.tls, ClientCertSettings(
        ca_file=material.client_ca.cert_file, crl_file=crl, require=False))
    site = await site_factory(ctx)
    extra = material.pki.client(material.client_ca, "to-be-revoked", email=ALICE)
    assert (await python_get(site.port, "/whoami", material.client(extra))).status == 200
    await asyncio.sleep(1.1)  # a CRL's lastUpdate has one-second resolution
    newer = material.pki.write_crl(material.client_ca, revoked=[material.revoked, extra],
                                   file_name="newer.crl.pem")
    crl.write_bytes(newer.read_bytes())
    assert refused(await python_get(site.port, "/whoami", material.client(extra)))
    assert (await python_get(site.port, "/whoami",
                             material.client(material.alice))).status == 200


def test_client_auth_context_trusts_only_the_configured_cas(material: Material) -> None:
    ctx = material.context()
    cas = ctx.get_ca_certs()
    names = [rdn[0][1] for c in cas for rdn in c["subject"] if rdn[0][0] == "commonName"]
    assert names == ["Client CA"]
    assert ctx.verify_mode == ssl.CERT_OPTIONAL
    assert ctx.verify_flags & ssl.VERIFY_CRL_CHECK_LEAF
    assert material.context(require=True).verify_mode == ssl.CERT_REQUIRED


def test_node_settings(material: Material, tmp_path: Path) -> None:
    base = {"tls": {"certificate": str(material.server.cert_file),
                    "private_key": str(material.server.key_file)}}
    assert node_client_auth_context(settings_from_mapping(base)) is None
    on = settings_from_mapping({"tls": {**base["tls"],
                                        "client_ca_file": str(material.client_ca.cert_file),
                                        "client_certificates": "require"}})
    ctx = node_client_auth_context(on)
    assert ctx is not None and ctx.verify_mode == ssl.CERT_REQUIRED
    with pytest.raises(ConfigError):
        node_client_auth_context(settings_from_mapping(
            {"tls": {**base["tls"], "client_crl_file": str(material.crl)}}))
    bad = tmp_path / "empty.pem"
    bad.write_text("not a certificate\n")
    with pytest.raises(ConfigError) as info:
        node_client_auth_context(settings_from_mapping(
            {"tls": {**base["tls"], "client_ca_file": str(bad)}}))
    assert "tls.client_ca_file" in str(info.value)
    with pytest.raises(ConfigError):
        settings_from_mapping({"tls": {"client_certificates": "always"}})


@pytest.mark.parametrize(("mode", "who", "expected"), [
    ("Ignore", "alice", (200, None)),
    ("Accepted", "alice", (200, ALICE)),
    ("Accepted", None, (200, None)),
    ("Accepted", "no_eku", (200, None)),
    ("Required", "alice", (200, ALICE)),
    ("Required", None, (403, None)),
    ("Required", "no_eku", (403, None)),
])
async def test_activesync_client_cert_auth_modes(material: Material, site_factory: Any,
                                                 mode: str, who: str | None,
                                                 expected: tuple[int, str | None]) -> None:
    site = await site_factory(material.context())
    cert = getattr(material, who) if who else None
    res = await python_get(site.port, f"/eas?mode={mode}", material.client(cert))
    assert res.status == expected[0], res
    if res.status == 200:
        assert res.json()["by_certificate"] == expected[1]


async def test_gateway_serve_requires_client_certificates_on_https(
        material: Material, tmp_path: Path) -> None:
    """The node's own wiring: tls.client_* keys → the HTTPS listener's context."""
    import os
    import sys

    root = Path(__file__).resolve().parents[2]
    health, https = free_port(), free_port()
    cfg = tmp_path / "gateway.toml"
    cfg.write_text(f"""
server_name = "mail1.example.test"
data_dir = "{tmp_path / 'var'}"
shutdown_grace_seconds = 1
[tls]
certificate = "{material.server.cert_file}"
private_key = "{material.server.key_file}"
generate_self_signed = false
client_ca_file = "{material.client_ca.cert_file}"
client_crl_file = "{material.crl}"
client_certificates = "require"
[http]
health_bind = ["127.0.0.1:{health}"]
[bindings]
https = ["127.0.0.1:{https}"]
""")
    log_path = tmp_path / "serve.log"
    with open(log_path, "w") as log_file:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway", "--config", str(cfg), "serve",
            stdout=log_file, stderr=asyncio.subprocess.STDOUT, cwd=root,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            for _ in range(600):
                if "is up" in log_path.read_text() or proc.returncode is not None:
                    break
                await asyncio.sleep(0.05)
            assert "is up" in log_path.read_text(), log_path.read_text()
            url = f"https://localhost:{https}/healthz"
            cacert = material.server_ca.cert_file
            assert refused(await curl_get(url, cacert=cacert))
            ok = await curl_get(url, cacert=cacert, cert=material.alice.cert_file,
                                key=material.alice.key_file)
            assert ok.status == 200, ok
            assert refused(await curl_get(url, cacert=cacert,
                                          cert=material.revoked.cert_file,
                                          key=material.revoked.key_file))
            # the plain health listener never asks for a certificate
            plain = await curl_get(f"http://127.0.0.1:{health}/healthz", cacert=cacert)
            assert plain.status == 200
            assert "client certificates required" in log_path.read_text()
        finally:
            if proc.returncode is None:
                proc.terminate()
            await asyncio.wait_for(proc.wait(), 20)


async def test_plain_http_carries_no_tls_extension(material: Material,
                                                   site_factory: Any) -> None:
    site = await site_factory(None)
    reader, writer = await asyncio.open_connection("127.0.0.1", site.port)
    writer.write(b"GET /whoami HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    assert raw.startswith(b"HTTP/1.1 401")


async def test_keep_alive_requests_share_the_connection_certificate(
        material: Material, site_factory: Any) -> None:
    """Several requests on one TLS connection each see the certificate."""
    site = await site_factory(material.context())
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", site.port, ssl=material.client(material.alice),
        server_hostname="localhost")
    bodies = []
    for _ in range(3):
        writer.write(b"GET /whoami HTTP/1.1\r\nHost: localhost\r\n\r\n")
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        length = int(re.search(rb"content-length: (\d+)", head.lower()).group(1))  # type: ignore[union-attr]
        bodies.append(await reader.readexactly(length))
    writer.close()
    assert all(b'"mailbox":"alice@example.test"' in b for b in bodies)
