"""The HTTPS authentication layer (gateway.http.auth) on real sockets with real clients.

The probes ``GET /auth/whoami`` (web mail policy) and ``GET /auth/activesync/whoami``
(ActiveSync policy) run under ``HttpService`` with the gateway's TLS context (client
certificates requested from a test CA), the real AuthService, local directory and
store (both engines). Policy is changed with the cmdlets, as an operator would.
Clients: curl (--basic, --ntlm, --cert), httpx, pyspnego (Negotiate carrying NTLM, on
http.client since curl's --negotiate speaks Kerberos only).
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import shutil
import socket
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import spnego
from starlette.applications import Starlette

from auth.certificates import CertificateAuthenticator, CertificateMapper
from auth.directories.local import LocalDirectory
from auth.hashing import HashRunner
from auth.service import AuthService
from gateway.admin import AdminContext, run_line
from gateway.config import Endpoint, TlsSettings
from gateway.http.auth import (
    HttpAuthenticator,
    PolicyCache,
    auth_probe_routes,
    channel_binding_for_certificate,
)
from gateway.http.server import HttpService
from gateway.tls import ClientCertSettings, client_auth_context
from tests.pki import Issued, TestCa, TestPki

CURL = shutil.which("curl")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(CURL is None, reason="curl missing")]

ALICE = "alice@example.test"
PW = "S3cret!pass"
OWA = "/auth/whoami"
EAS = "/auth/activesync/whoami"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Pki:
    server_ca: TestCa
    client_ca: TestCa
    server: Issued
    alice: Issued


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    p = TestPki(Path(tmp_path_factory.mktemp("pki")))
    server_ca, client_ca = p.ca("Server CA"), p.ca("Client CA")
    return Pki(server_ca, client_ca, p.server(server_ca),
               p.client(client_ca, "alice", email=ALICE))


class NoSleep:
    async def __call__(self, seconds: float) -> None:
        return None


@dataclass
class Site:
    port: int
    plain_port: int
    ctx: AdminContext
    ca: Path
    pki: Pki

    def url(self, path: str) -> str:
        return f"https://localhost:{self.port}{path}"

    async def admin(self, line: str) -> None:
        await run_line(self.ctx, line)


@pytest.fixture
async def site(store: Any, pki: Pki) -> AsyncIterator[Site]:
    ctx = AdminContext(store=store, server_name="mail1.example.test")
    await run_line(ctx, "New-AcceptedDomain -Name example -DomainName example.test")
    await run_line(ctx, "Set-OrganizationConfig -NetbiosDomain EXAMPLE")
    await run_line(ctx, f"New-Mailbox alice -PrimarySmtpAddress {ALICE} -Password '{PW}' "
                        "-NtlmEnabled $true")
    runner = HashRunner(max_workers=2)
    service = AuthService(LocalDirectory(store.org, runner, settings_ttl=0), store.auth_state,
                          sleep=NoSleep())
    service.certificates = CertificateMapper(store.org)
    policy = PolicyCache(store.org, ttl=0)  # cmdlet changes apply to the next request
    binding = channel_binding_for_certificate(pki.server.cert_file)
    owa = HttpAuthenticator(service, policy, protocol="owa", realm="mail1",
                            channel_binding=binding)
    eas = HttpAuthenticator(service, policy, protocol="activesync", realm="mail1",
                            certificates=CertificateAuthenticator(service, cache_ttl=0),
                            channel_binding=binding)
    app = Starlette(routes=auth_probe_routes(owa, eas))
    tls = client_auth_context(
        TlsSettings(certificate=pki.server.cert_file, private_key=pki.server.key_file,
                    generate_self_signed=False),
        ClientCertSettings(ca_file=pki.client_ca.cert_file, crl_file=None, require=False))
    port, plain_port = free_port(), free_port()
    https = HttpService("https", app, (Endpoint("127.0.0.1", port),), tls=tls)
    plain = HttpService("http", app, (Endpoint("127.0.0.1", plain_port),))
    await https.start()
    await plain.start()
    try:
        yield Site(port, plain_port, ctx, pki.server_ca.cert_file, pki)
    finally:
        await https.stop(1)
        await plain.stop(1)
        runner.close()


@dataclass
class CurlResult:
    status: int
    headers: list[str]
    body: str


async def curl(site: Site, url: str, *args: str) -> CurlResult:
    """curl with the test CA; the last response's status, all header lines, the body."""
    assert CURL is not None
    proc = await asyncio.create_subprocess_exec(
        CURL, "-sS", "--max-time", "20", "--cacert", str(site.ca), "-D", "-",
        "-w", "\n%{http_code}", *args, url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    text, _, code = out.decode(errors="replace").rpartition("\n")
    head, _, body = text.rpartition("\r\n\r\n")
    return CurlResult(int(code), head.split("\r\n"), body)


def challenges(result: CurlResult) -> list[str]:
    return [line.split(":", 1)[1].strip() for line in result.headers
            if line.lower().startswith("www-authenticate:")]


# -- Basic ------------------------------------------------------------------------------


async def test_curl_basic_over_https(site: Site) -> None:
    ok = await curl(site, site.url(OWA), "--basic", "-u", f"{ALICE}:{PW}")
    assert ok.status == 200, ok
    assert '"primary_smtp_address":"alice@example.test"' in ok.body
    assert '"mechanism":"Basic"' in ok.body
    bad = await curl(site, site.url(OWA), "--basic", "-u", f"{ALICE}:wrong-password")
    assert bad.status == 401
    assert challenges(bad) == ['Basic realm="mail1", charset="UTF-8"']
    assert "alice" not in bad.body


async def test_no_credentials_offers_what_policy_allows(site: Site) -> None:
    async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=str(site.ca))) as client:
        first = await client.get(site.url(OWA))
        assert first.status_code == 401
        assert first.headers.get_list("www-authenticate") == [
            'Basic realm="mail1", charset="UTF-8"']
        await site.admin("Set-OwaVirtualDirectory -WindowsAuthentication $true")
        second = await client.get(site.url(OWA))
        assert second.headers.get_list("www-authenticate") == [
            "Negotiate", "NTLM", 'Basic realm="mail1", charset="UTF-8"']
        await site.admin("Set-OwaVirtualDirectory -BasicAuthentication $false")
        third = await client.get(site.url(OWA), auth=(ALICE, PW))
        assert third.status_code == 401
        assert third.headers.get_list("www-authenticate") == ["Negotiate", "NTLM"]


async def test_httpx_basic_repeated_requests(site: Site) -> None:
    """Per-request Basic (what ActiveSync does) on one connection: every request is
    authenticated; after the first, from the credential cache."""
    tls = ssl.create_default_context(cafile=str(site.ca))
    async with httpx.AsyncClient(verify=tls, auth=(ALICE, PW)) as client:
        for _ in range(5):
            reply = await client.get(site.url(EAS))
            assert reply.status_code == 200
            assert reply.json()["mechanism"] == "Basic"


async def test_malformed_and_unknown_authorization_is_a_401(site: Site) -> None:
    await site.admin("Set-OwaVirtualDirectory -WindowsAuthentication $true")
    tls = ssl.create_default_context(cafile=str(site.ca))
    async with httpx.AsyncClient(verify=tls) as client:
        for value in ("Basic !!!notbase64", "Basic " + "QUFB" * 3000, "Digest x=1",
                      "NTLM bm90IG50bG0=", "Negotiate", "Negotiate AAAA", "Bearer abc",
                      "Basic"):
            reply = await client.get(site.url(OWA), headers={"Authorization": value})
            assert reply.status_code == 401, value
            assert reply.headers.get_list("www-authenticate") == [
                "Negotiate", "NTLM", 'Basic realm="mail1", charset="UTF-8"'], value
            assert reply.json() == {"error": "authentication required"}


async def test_default_domain_qualifies_bare_names(site: Site) -> None:
    await site.admin("Set-OwaVirtualDirectory -LogonFormat UserName -DefaultDomain EXAMPLE")
    ok = await curl(site, site.url(OWA), "--basic", "-u", f"alice:{PW}")
    assert ok.status == 200, ok
    await site.admin("Set-OwaVirtualDirectory -DefaultDomain nowhere.test")
    refused = await curl(site, site.url(OWA), "--basic", "-u", f"alice:{PW}")
    assert refused.status == 401


async def test_plain_http_offers_and_accepts_nothing(site: Site) -> None:
    url = f"http://127.0.0.1:{site.plain_port}{OWA}"
    await site.admin("Set-OwaVirtualDirectory -WindowsAuthentication $true")
    for args in (("--basic", "-u", f"{ALICE}:{PW}"), ("--ntlm", "-u", f"EXAMPLE\\alice:{PW}"),
                 ()):
        result = await curl(site, url, *args)
        assert result.status == 403, (args, result)
        assert challenges(result) == []


# -- NTLM and Negotiate -----------------------------------------------------------------


async def test_curl_ntlm_over_https(site: Site) -> None:
    off = await curl(site, site.url(OWA), "--ntlm", "-u", f"EXAMPLE\\alice:{PW}")
    assert off.status == 401  # WindowsAuthentication is off by default
    assert "NTLM" not in challenges(off)
    await site.admin("Set-OwaVirtualDirectory -WindowsAuthentication $true")
    ok = await curl(site, site.url(OWA), "--ntlm", "-u", f"EXAMPLE\\alice:{PW}")
    assert ok.status == 200, ok
    assert '"mechanism":"NTLM"' in ok.body and ALICE in ok.body
    wrong = await curl(site, site.url(OWA), "--ntlm", "-u", "EXAMPLE\\alice:not-it")
    assert wrong.status == 401
    # ActiveSync has its own switch
    eas = await curl(site, site.url(EAS), "--ntlm", "-u", f"EXAMPLE\\alice:{PW}")
    assert eas.status == 401
    await site.admin("Set-ActiveSyncVirtualDirectory -WindowsAuthEnabled $true")
    eas = await curl(site, site.url(EAS), "--ntlm", "-u", f"EXAMPLE\\alice:{PW}")
    assert eas.status == 200


def _negotiate(site: Site, path: str, *, split: bool = False) -> tuple[int, str, str]:
    """pyspnego Negotiate. ``split``: send the final token on a second connection."""
    context = spnego.client("EXAMPLE\\alice", PW, protocol="negotiate")
    tls = ssl.create_default_context(cafile=str(site.ca))
    conns = [http.client.HTTPSConnection("localhost", site.port, context=tls, timeout=10)
             for _ in range(2)]
    try:
        token: bytes | None = context.step()
        rounds = 0
        while True:
            assert token is not None
            conn = conns[1] if split and rounds >= 1 else conns[0]
            conn.request("GET", path, headers={
                "Authorization": "Negotiate " + base64.b64encode(token).decode()})
            reply = conn.getresponse()
            body = reply.read().decode()
            header = reply.headers.get("WWW-Authenticate", "")
            rounds += 1
            if reply.status != 401 or not header.startswith("Negotiate "):
                break
            token = context.step(base64.b64decode(header.split(" ", 1)[1]))
        if reply.status == 200:
            assert context.step(base64.b64decode(header.split(" ", 1)[1])) is None
            assert context.complete  # our mechListMIC was accepted by pyspnego
        return reply.status, body, header
    finally:
        for c in conns:
            c.close()


async def test_pyspnego_negotiate(site: Site) -> None:
    status, _, _ = await asyncio.to_thread(_negotiate, site, OWA)
    assert status == 401
    await site.admin("Set-OwaVirtualDirectory -WindowsAuthentication $true")
    status, body, header = await asyncio.to_thread(_negotiate, site, OWA)
    assert status == 200, body
    assert '"mechanism":"Negotiate"' in body and ALICE in body
    assert header.startswith("Negotiate ")


async def test_ntlm_state_is_never_shared_between_connections(site: Site) -> None:
    """The CHALLENGE is answered on another connection: refused (MS-NTHT §3.2.5.1.1)."""
    await site.admin("Set-OwaVirtualDirectory -WindowsAuthentication $true")
    status, _, header = await asyncio.to_thread(_negotiate, site, OWA, split=True)
    assert status == 401
    assert header in ("Negotiate", "NTLM") or header.startswith("Basic")


# -- client certificates ----------------------------------------------------------------


async def test_client_certificate_required(site: Site) -> None:
    cert = ("--cert", str(site.pki.alice.cert_file), "--key", str(site.pki.alice.key_file))
    ignored = await curl(site, site.url(EAS), *cert)
    assert ignored.status == 401  # Ignore: the certificate does not log in
    await site.admin("Set-ActiveSyncVirtualDirectory -ClientCertAuth Required")
    ok = await curl(site, site.url(EAS), *cert)
    assert ok.status == 200, ok
    assert '"mechanism":"Certificate"' in ok.body and ALICE in ok.body
    without = await curl(site, site.url(EAS), "--basic", "-u", f"{ALICE}:{PW}")
    assert without.status == 403 and challenges(without) == []
    # web mail is unaffected by ActiveSync's setting
    owa = await curl(site, site.url(OWA), "--basic", "-u", f"{ALICE}:{PW}")
    assert owa.status == 200


async def test_client_certificate_accepted(site: Site) -> None:
    await site.admin("Set-ActiveSyncVirtualDirectory -ClientCertAuth Accepted")
    cert = ("--cert", str(site.pki.alice.cert_file), "--key", str(site.pki.alice.key_file))
    by_cert = await curl(site, site.url(EAS), *cert)
    assert by_cert.status == 200 and '"mechanism":"Certificate"' in by_cert.body
    by_basic = await curl(site, site.url(EAS), "--basic", "-u", f"{ALICE}:{PW}")
    assert by_basic.status == 200 and '"mechanism":"Basic"' in by_basic.body
    nothing = await curl(site, site.url(EAS))
    assert nothing.status == 401


# -- the node's HTTPS listener (`gateway serve`) -----------------------------------------


async def test_probe_on_gateway_serve(tmp_path: Path, store_url: str) -> None:
    """The probes are mounted on the node's HTTPS app beside /healthz; a cmdlet run
    with `gateway exec` reaches the running node's policy without a restart."""
    from tests.integration.test_serve import Server, gateway, write_config

    cfg, _health, port = write_config(tmp_path, store_url)
    server = Server(cfg, tmp_path / "serve.log")
    try:
        await asyncio.to_thread(server.wait_for, "gateway mail1.example.test is up")
        ca = tmp_path / "var" / "tls" / "cert.pem"
        r = await asyncio.to_thread(
            gateway, cfg, "exec", f"New-Mailbox alice -PrimarySmtpAddress "
            f"alice@example.test -Password '{PW}' -NtlmEnabled $true")
        assert r.returncode == 0, r.stderr
        site = Site(port, 0, AdminContext(store=None, server_name="x"), ca, None)  # type: ignore[arg-type]
        url = site.url(OWA)
        ok = await curl(site, url, "--basic", "-u", f"{ALICE}:{PW}")
        assert ok.status == 200, ok
        assert '"mechanism":"Basic"' in ok.body
        health = await curl(site, site.url("/healthz"))
        assert health.status == 200
        ntlm = await curl(site, url, "--ntlm", "-u", f"EXAMPLE\\alice:{PW}")
        assert ntlm.status == 401
        r = await asyncio.to_thread(gateway, cfg, "exec",
                                    "Set-OwaVirtualDirectory -WindowsAuthentication $true")
        assert r.returncode == 0, r.stderr
        deadline = time.monotonic() + 30  # the node re-reads the policy every 10 s
        while ntlm.status != 200 and time.monotonic() < deadline:
            await asyncio.sleep(1)
            ntlm = await curl(site, url, "--ntlm", "-u", f"EXAMPLE\\alice:{PW}")
        assert ntlm.status == 200, ntlm
        assert '"mechanism":"NTLM"' in ntlm.body
    finally:
        assert await asyncio.to_thread(server.stop) == 0
    assert "Traceback" not in server.output()
