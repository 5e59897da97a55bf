"""curl's NTLM implementation against ours, over real sockets.

The SMTP, IMAP and POP3 front ends do not offer NTLM yet (their mechanism lists are
PLAIN and LOGIN), so these tests drive the shared pieces through minimal responders
written here: an SMTP responder that runs ``SaslExchange`` exactly as a front end
does (curl ``--login-options AUTH=NTLM``), and an HTTPS responder that keeps one
``HttpNtlmState`` per TCP connection (curl ``--ntlm``; pyspnego for ``Negotiate``,
since curl's ``--negotiate`` speaks Kerberos only). Verification goes through
the real AuthService, local directory and store (both engines), with the mailbox
provisioned by ``New-Mailbox -NtlmEnabled $true``."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import http.client
import shutil
import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import spnego
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from auth.directories.local import LocalDirectory
from auth.errors import AuthenticationFailed, MechanismCancelled, MechanismError
from auth.hashing import HashRunner
from auth.mechanisms.sasl import MAX_ENCODED_LENGTH, SaslExchange, SendChallenge
from auth.ntlm.http import HttpChallenge, HttpNtlmState
from auth.ntlm.verify import channel_bindings_hash, tls_server_end_point
from auth.service import AuthService
from gateway.admin import AdminContext, run_line
from tests.ldap_support.slapd import make_ca_and_server

CURL = shutil.which("curl")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(CURL is None, reason="curl missing")]

PW = "S3cret!pass"


class NoSleep:
    async def __call__(self, seconds: float) -> None:
        return None


@pytest.fixture
def runner() -> Iterator[HashRunner]:
    r = HashRunner(max_workers=2)
    yield r
    r.close()


@pytest.fixture
async def service(store: Any, runner: HashRunner) -> AuthService:
    ctx = AdminContext(store=store, server_name="mail1.example.test")
    await run_line(ctx, "New-AcceptedDomain -Name example -DomainName example.test")
    await run_line(ctx, "Set-OrganizationConfig -NetbiosDomain EXAMPLE")
    await run_line(ctx, f"New-Mailbox alice -PrimarySmtpAddress alice@example.test "
                        f"-Password '{PW}' -NtlmEnabled $true")
    return AuthService(LocalDirectory(store.org, runner, settings_ttl=0), store.auth_state,
                       sleep=NoSleep())


async def curl(*args: str) -> tuple[int, str, str]:
    assert CURL is not None
    proc = await asyncio.create_subprocess_exec(
        CURL, "-sS", "--max-time", "20", *args, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")


# -- SMTP AUTH NTLM ---------------------------------------------------------------------


class SmtpResponder:
    """EHLO, AUTH (via SaslExchange, as protocols/smtp does), NOOP, HELP, QUIT."""

    def __init__(self, service: AuthService) -> None:
        self.service = service
        self.transcript: list[str] = []
        self.principals: list[str] = []

    async def handle(self, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter) -> None:
        async def send(line: str) -> None:
            self.transcript.append("S: " + line)
            writer.write(line.encode() + b"\r\n")
            await writer.drain()

        async def read() -> str:
            line = (await reader.readline())[:MAX_ENCODED_LENGTH + 2].decode().rstrip("\r\n")
            self.transcript.append("C: " + line)
            return line

        try:
            await send("220 test ESMTP")
            while line := await read():
                verb, _, arg = line.partition(" ")
                verb = verb.upper()
                if verb == "EHLO":
                    await send("250-test")
                    await send("250 AUTH NTLM")
                elif verb == "AUTH":
                    await self.auth(arg, send, read)
                elif verb in ("NOOP", "HELP"):
                    await send("250 2.0.0 OK")
                elif verb == "QUIT":
                    await send("221 2.0.0 Bye")
                    break
                else:
                    await send("500 5.5.1 unrecognised")
        finally:
            writer.close()

    async def auth(self, arg: str, send: Any, read: Any) -> None:
        mechanism, _, initial = arg.partition(" ")
        try:
            exchange = SaslExchange.create(mechanism, allowed=frozenset({"NTLM"}))
            step = exchange.begin(initial or None)
            while isinstance(step, SendChallenge):
                await send(f"334 {step.text}")
                step = exchange.feed(await read())
            principal = await self.service.authenticate(
                step.credential, protocol="smtp", mechanism=exchange.mechanism.name,
                source_ip="127.0.0.1")
        except MechanismCancelled:
            await send("501 5.7.0 cancelled")
            return
        except MechanismError:
            await send("501 5.5.2 bad data")
            return
        except AuthenticationFailed:
            await send("535 5.7.3 Authentication unsuccessful")
            return
        self.principals.append(principal.name)
        await send("235 2.7.0 Authentication successful")


@pytest.fixture
async def smtp(service: AuthService) -> AsyncIterator[tuple[SmtpResponder, int]]:
    responder = SmtpResponder(service)
    server = await asyncio.start_server(responder.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield responder, port
    server.close()
    await server.wait_closed()


@pytest.mark.parametrize("user", ["alice", "EXAMPLE\\alice", "alice@example.test"])
async def test_curl_smtp_auth_ntlm(smtp: tuple[SmtpResponder, int], user: str) -> None:
    responder, port = smtp
    code, _, err = await curl(f"smtp://127.0.0.1:{port}", "-u", f"{user}:{PW}",
                              "--login-options", "AUTH=NTLM", "-X", "NOOP")
    assert code == 0, err + "\n".join(responder.transcript)
    assert responder.principals == ["EXAMPLE\\alice"]
    assert "S: 235 2.7.0 Authentication successful" in responder.transcript
    # curl sent NEGOTIATE after an empty 334, then AUTHENTICATE after our CHALLENGE
    assert responder.transcript[responder.transcript.index("C: AUTH NTLM") + 1] == "S: 334 "


async def test_curl_smtp_auth_ntlm_wrong_password(smtp: tuple[SmtpResponder, int],
                                                  store: Any) -> None:
    responder, port = smtp
    code, _, _ = await curl(f"smtp://127.0.0.1:{port}", "-u", "alice:wrong-password",
                            "--login-options", "AUTH=NTLM", "-X", "NOOP")
    assert code != 0
    assert "S: 535 5.7.3 Authentication unsuccessful" in responder.transcript
    assert responder.principals == []
    audit = await store.auth_state.list_audit(limit=1)
    assert (audit[0].mechanism, audit[0].reason) == ("NTLM", "wrong password")


# -- HTTPS NTLM -------------------------------------------------------------------------


class HttpsResponder:
    """HTTP/1.1 keep-alive responder: 401 + WWW-Authenticate until NTLM succeeds.

    One HttpNtlmState per TCP connection, as the web layer must keep it."""

    def __init__(self, service: AuthService, channel_binding: bytes | None) -> None:
        self.service = service
        self.channel_binding = channel_binding
        self.connections = 0
        self.log: list[str] = []

    async def handle(self, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        conn_id = f"c-{self.connections}"
        state = HttpNtlmState(connection_id=conn_id, tls=True,
                              channel_binding=self.channel_binding)
        try:
            while True:
                request = await reader.readuntil(b"\r\n\r\n")
                headers = {}
                for line in request.decode("latin-1").split("\r\n")[1:]:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                status, extra, body = await self.respond(state, conn_id,
                                                         headers.get("authorization"))
                self.log.append(f"{conn_id} {status}")
                head = f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n"
                head += "".join(f"{k}: {v}\r\n" for k, v in extra)
                writer.write(head.encode() + b"\r\n" + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def respond(self, state: HttpNtlmState, conn_id: str, authorization: str | None
                      ) -> tuple[str, list[tuple[str, str]], bytes]:
        offers = [("WWW-Authenticate", o) for o in state.offers()]
        if authorization is None:
            return "401 Unauthorized", offers, b""
        try:
            step = state.feed(authorization, connection_id=conn_id)
            if isinstance(step, HttpChallenge):
                return "401 Unauthorized", [("WWW-Authenticate", step.www_authenticate)], b""
            principal = await self.service.authenticate(
                step.credential, protocol="owa", mechanism=step.scheme,
                source_ip="127.0.0.1")
        except (MechanismError, AuthenticationFailed):
            return "401 Unauthorized", offers, b""
        final = state.final_header(step)
        extra = [("WWW-Authenticate", final)] if final else []
        return "200 OK", extra, f"hello {principal.name}".encode()


@pytest.fixture
async def https(service: AuthService, tmp_path: Path
                ) -> AsyncIterator[tuple[HttpsResponder, int, Path]]:
    ca, cert, key = make_ca_and_server(tmp_path)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    der = x509.load_pem_x509_certificate(cert.read_bytes()).public_bytes(
        serialization.Encoding.DER)
    responder = HttpsResponder(service, channel_bindings_hash(tls_server_end_point(der)))
    server = await asyncio.start_server(responder.handle, "127.0.0.1", 0, ssl=ctx)
    port = server.sockets[0].getsockname()[1]
    yield responder, port, ca
    server.close()
    with contextlib.suppress(Exception):
        await server.wait_closed()


async def test_curl_https_ntlm(https: tuple[HttpsResponder, int, Path]) -> None:
    responder, port, ca = https
    code, out, err = await curl("--ntlm", "-u", f"EXAMPLE\\alice:{PW}", "--cacert", str(ca),
                                f"https://127.0.0.1:{port}/owa/")
    assert code == 0, err
    assert out == "hello EXAMPLE\\alice"
    # the whole handshake ran on one connection: 401 (challenge), then 200
    assert responder.connections == 1
    assert responder.log[-1] == "c-1 200 OK"


async def test_curl_https_ntlm_wrong_password(https: tuple[HttpsResponder, int, Path]
                                              ) -> None:
    responder, port, ca = https
    _, out, _ = await curl("--ntlm", "-u", "alice:nope-nope", "--cacert", str(ca),
                              "-o", "/dev/null", "-w", "%{http_code}",
                              f"https://127.0.0.1:{port}/owa/")
    assert out == "401"
    assert all(not line.endswith("200 OK") for line in responder.log)


async def test_pyspnego_negotiate_over_https(https: tuple[HttpsResponder, int, Path]) -> None:
    """Negotiate (SPNEGO carrying NTLM, RFC 4559) on one kept-alive TLS connection,
    with pyspnego as the client; the client checks our final mechListMIC."""
    responder, port, ca = https

    def run() -> tuple[int, str]:
        context = spnego.client("EXAMPLE\\alice", PW, protocol="negotiate")
        tls = ssl.create_default_context(cafile=str(ca))
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=tls, timeout=10)
        try:
            conn.request("GET", "/owa/")
            first = conn.getresponse()
            first.read()
            assert first.status == 401
            assert "Negotiate" in first.headers.get_all("WWW-Authenticate", [])
            token: bytes | None = context.step()
            while True:
                assert token is not None
                conn.request("GET", "/owa/", headers={
                    "Authorization": "Negotiate " + base64.b64encode(token).decode()})
                reply = conn.getresponse()
                body = reply.read().decode()
                header = reply.headers.get("WWW-Authenticate", "")
                if reply.status != 401:
                    break
                token = context.step(base64.b64decode(header.split(" ", 1)[1]))
            assert header.startswith("Negotiate ")
            assert context.step(base64.b64decode(header.split(" ", 1)[1])) is None
            assert context.complete
            return reply.status, body
        finally:
            conn.close()

    status, body = await asyncio.to_thread(run)
    assert (status, body) == (200, "hello EXAMPLE\\alice")
    assert responder.connections == 1
