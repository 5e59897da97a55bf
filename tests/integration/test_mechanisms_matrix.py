"""Every SASL mechanism and line protocol the policy allows, and the refusals it demands.

The real SMTP, IMAP and POP3 services run on loopback ports over a real store (both
engines), with the node's wiring: the client-auth TLS context from ``tests.pki`` for
the submission connectors, IMAP and POP3 (never the port-25 Default Frontend), and
our certificate's DER for NTLM channel binding. Clients are real: curl (SASL PLAIN,
LOGIN, NTLM and EXTERNAL over all three protocols), smtplib and imaplib for PLAIN and
LOGIN, pyspnego for NTLM with and without a (right or wrong) channel binding.

Policy under test (auth.policy / gateway.protocol_settings, docs/authentication.md):
NTLM needs Integrated on the SMTP connector; LOGIN and PLAIN need TLS first under
BasicAuthRequireTLS (SMTP) and SecureLogin (IMAP, POP3); NTLM needs a mailbox with
NTLM enabled; EXTERNAL needs a verified client certificate.
"""

from __future__ import annotations

import asyncio
import base64
import imaplib
import shutil
import smtplib
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import spnego
from spnego.channel_bindings import GssChannelBindings

from auth.certificates import CertificateMapper
from auth.directories.local import LocalDirectory
from auth.hashing import HashRunner
from auth.ntlm.verify import tls_server_end_point
from auth.service import AuthService
from gateway.admin import AdminContext, run_line
from gateway.config import Endpoint, TlsSettings
from gateway.connectors import ReceiveConnector
from gateway.connectors.ranges import parse_bindings, parse_ip_ranges
from gateway.tls import ClientCertSettings, client_auth_context, server_context
from protocols.imap.service import ImapService
from protocols.pop3.service import Pop3Service
from protocols.smtp.service import SmtpService
from tests.pki import Issued, TestPki

CURL = shutil.which("curl")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(CURL is None, reason="curl missing")]

SERVER = "mail1.example.test"
PW = "S3cret!pass"
ALICE = "alice@example.test"  # NTLM enabled, certificate with her UPN
BOB = "bob@example.test"      # password only: NTLM disabled


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _no_sleep(seconds: float) -> None:
    return None


@dataclass
class Env:
    store: Any
    smtp: SmtpService
    ports: dict[str, int]
    ca: Path
    server_der: bytes
    alice_cert: Issued

    def client_tls(self, cert: Issued | None = None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca))
        if cert is not None:
            ctx.load_cert_chain(cert.cert_file, cert.key_file)
        return ctx

    async def last_audit(self) -> Any:
        return (await self.store.auth_state.list_audit(limit=1))[0]


@pytest.fixture
async def env(store: Any, tmp_path: Path) -> AsyncIterator[Env]:
    admin = AdminContext(store=store, server_name=SERVER)
    for line in ("New-AcceptedDomain -Name example -DomainName example.test",
                 "Set-OrganizationConfig -NetbiosDomain EXAMPLE",
                 f"New-Mailbox alice -PrimarySmtpAddress {ALICE} -Password '{PW}' "
                 "-NtlmEnabled $true",
                 f"New-Mailbox bob -PrimarySmtpAddress {BOB} -Password '{PW}'"):
        await run_line(admin, line)
    pki = TestPki(tmp_path / "pki")
    server_ca, client_ca = pki.ca("Server CA"), pki.ca("Client CA")
    server_cert = pki.server(server_ca)
    alice_cert = pki.client(client_ca, "alice", upn=ALICE)
    files = TlsSettings(server_cert.cert_file, server_cert.key_file, False)
    tls = server_context(files)
    client_auth = client_auth_context(files, ClientCertSettings(
        ca_file=client_ca.cert_file, crl_file=None, require=False))
    runner = HashRunner(max_workers=2)
    auth = AuthService(LocalDirectory(store.org, runner, settings_ttl=0), store.auth_state,
                       sleep=_no_sleep)
    auth.certificates = CertificateMapper(store.org)
    ports = {k: free_port() for k in ("smtp", "submission", "imap", "imaps", "pop3",
                                      "pop3s", "basic_only")}
    bind = {k: (Endpoint("127.0.0.1", p),) for k, p in ports.items()}
    smtp = SmtpService(store=store, auth=auth, server_name=SERVER, tls=tls, bindings=bind,
                       policy_refresh=0, workers=1, tls_client_auth=client_auth,
                       server_certificate=server_cert.der)
    imap = ImapService(store=store, auth=auth, server_name=SERVER, tls=tls,
                       node_bindings=bind, tls_client_auth=client_auth,
                       server_certificate=server_cert.der)
    pop3 = Pop3Service(org=store.org, mail=store.mail, auth=auth, tls=tls,
                       node_bindings=bind, tls_client_auth=client_auth,
                       server_certificate=server_cert.der)
    started: list[Any] = []
    try:
        for service in (smtp, imap, pop3):
            await service.start()
            started.append(service)
        yield Env(store, smtp, ports, server_ca.cert_file, server_cert.der, alice_cert)
    finally:
        for service in reversed(started):
            await service.stop(1)
        runner.close()


async def curl(*args: str) -> tuple[int, str]:
    assert CURL is not None
    proc = await asyncio.create_subprocess_exec(
        CURL, "-sS", "-v", "--max-time", "20", *args, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(errors="replace") + err.decode(errors="replace")


def curl_url(env: Env, protocol: str) -> list[str]:
    """Submission with STARTTLS, IMAPS, POP3S."""
    if protocol == "smtp":
        return [f"smtp://127.0.0.1:{env.ports['submission']}", "--ssl-reqd", "-X", "NOOP"]
    if protocol == "imap":
        return [f"imaps://127.0.0.1:{env.ports['imaps']}/"]
    return [f"pop3s://127.0.0.1:{env.ports['pop3s']}/"]


# -- every allowed pair, with curl ----------------------------------------------------

@pytest.mark.parametrize("protocol", ["smtp", "imap", "pop3"])
@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN", "NTLM", "EXTERNAL"])
async def test_curl_logs_in_with_every_mechanism(env: Env, protocol: str,
                                                 mechanism: str) -> None:
    args = [*curl_url(env, protocol), "--cacert", str(env.ca),
            "--login-options", f"AUTH={mechanism}"]
    if mechanism == "EXTERNAL":
        args += ["--cert", str(env.alice_cert.cert_file),
                 "--key", str(env.alice_cert.key_file), "-u", f"{ALICE}:"]
    else:
        user = "EXAMPLE\\alice" if mechanism == "NTLM" else ALICE
        args += ["-u", f"{user}:{PW}"]
    code, transcript = await curl(*args)
    assert code == 0, transcript
    event = await env.last_audit()
    assert (event.protocol, event.mechanism, event.outcome) == (protocol, mechanism,
                                                               "success"), event
    assert event.mailbox_id is not None


# -- PLAIN and LOGIN with the standard library's clients ------------------------------

@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
async def test_smtplib_submission(env: Env, mechanism: str) -> None:
    def run() -> tuple[str, tuple[int, bytes]]:
        with smtplib.SMTP("127.0.0.1", env.ports["submission"], timeout=10) as s:
            s.ehlo("client.example.test")
            s.starttls(context=env.client_tls())
            s.ehlo("client.example.test")
            s.user, s.password = ALICE, PW
            auth = s.esmtp_features["auth"]
            return auth, s.auth(mechanism, getattr(s, f"auth_{mechanism.lower()}"))

    offered, (code, _) = await asyncio.to_thread(run)
    assert offered.split() == ["LOGIN", "PLAIN", "NTLM"]  # no certificate: no EXTERNAL
    assert code == 235


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
async def test_imaplib_authenticate(env: Env, mechanism: str) -> None:
    def answer(challenge: bytes) -> bytes:
        if mechanism == "PLAIN":
            return f"\0{ALICE}\0{PW}".encode()
        return ALICE.encode() if challenge.startswith(b"User") else PW.encode()

    def run() -> tuple[tuple[str, ...], str]:
        with imaplib.IMAP4_SSL("127.0.0.1", env.ports["imaps"],
                               ssl_context=env.client_tls()) as c:
            caps = c.capabilities
            typ, _ = c.authenticate(mechanism, answer)
            c.logout()
            return caps, typ

    caps, typ = await asyncio.to_thread(run)
    assert {"AUTH=PLAIN", "AUTH=LOGIN", "AUTH=NTLM"} <= set(caps)
    assert "AUTH=EXTERNAL" not in caps
    assert typ == "OK"


# -- NTLM with pyspnego: channel binding honoured over TLS ----------------------------

def _imaps_ntlm(env: Env, user: str, bindings: GssChannelBindings | None) -> list[str]:
    """AUTHENTICATE NTLM over IMAPS driven by pyspnego; returns the server's lines."""
    client = spnego.client(user, PW, protocol="ntlm", channel_bindings=bindings)
    lines: list[str] = []
    raw = socket.create_connection(("127.0.0.1", env.ports["imaps"]), timeout=10)
    with env.client_tls().wrap_socket(raw, server_hostname="localhost") as sock:
        f = sock.makefile("rb")

        def read() -> str:
            line = f.readline().decode().rstrip("\r\n")
            lines.append(line)
            return line

        read()  # greeting
        sock.sendall(b"a AUTHENTICATE NTLM\r\n")
        assert read() == "+ "
        sock.sendall(base64.b64encode(client.step() or b"") + b"\r\n")
        line = read()
        while line.startswith("+ "):
            token = client.step(base64.b64decode(line[2:]))
            sock.sendall(base64.b64encode(token or b"") + b"\r\n")
            line = read()
        sock.sendall(b"b LOGOUT\r\n")
    return lines


async def test_pyspnego_ntlm_with_channel_binding(env: Env) -> None:
    cb = GssChannelBindings(application_data=tls_server_end_point(env.server_der))
    lines = await asyncio.to_thread(_imaps_ntlm, env, "EXAMPLE\\alice", cb)
    assert lines[-1].startswith("a OK"), lines


async def test_pyspnego_ntlm_with_wrong_channel_binding_is_refused(env: Env) -> None:
    cb = GssChannelBindings(application_data=b"tls-server-end-point:" + b"\x01" * 32)
    lines = await asyncio.to_thread(_imaps_ntlm, env, "EXAMPLE\\alice", cb)
    assert lines[-1] == "a NO [AUTHENTICATIONFAILED] Authentication failed", lines
    assert (await env.last_audit()).reason == "channel binding mismatch"


# -- refusals the policy demands ------------------------------------------------------

async def test_smtp_ntlm_not_offered_without_integrated(env: Env) -> None:
    await env.store.connectors.create_receive_connector(ReceiveConnector(
        id=0, server=SERVER, name="Basic only", usage="Client",
        bindings=parse_bindings(f"127.0.0.1:{env.ports['basic_only']}"),
        remote_ip_ranges=parse_ip_ranges("0.0.0.0-255.255.255.255"),
        permission_groups=frozenset({"ExchangeUsers"}),
        auth_mechanism=frozenset({"Tls", "BasicAuth", "BasicAuthRequireTLS"})))
    await env.smtp.on_org_change(await env.store.org.version())

    def run() -> tuple[str, tuple[int, bytes]]:
        with smtplib.SMTP("127.0.0.1", env.ports["basic_only"], timeout=10) as s:
            s.starttls(context=env.client_tls())
            s.ehlo("client.example.test")
            return s.esmtp_features["auth"], s.docmd("AUTH", "NTLM")

    offered, (code, text) = await asyncio.to_thread(run)
    assert offered.split() == ["LOGIN", "PLAIN"]
    assert (code, text) == (504, b"5.7.4 Unrecognized authentication type")


async def test_smtp_basic_auth_refused_before_tls(env: Env) -> None:
    def run() -> tuple[str, tuple[int, bytes], tuple[int, bytes]]:
        with smtplib.SMTP("127.0.0.1", env.ports["submission"], timeout=10) as s:
            s.ehlo("client.example.test")
            ir = base64.b64encode(f"\0{ALICE}\0{PW}".encode()).decode()
            return (s.esmtp_features.get("auth", ""), s.docmd("AUTH", f"PLAIN {ir}"),
                    s.docmd("AUTH", "LOGIN"))

    offered, plain, login = await asyncio.to_thread(run)
    assert offered.split() == ["NTLM"]  # Integrated does not need TLS; BasicAuth does
    assert plain[0] == 504 and login[0] == 504


async def test_imap_and_pop3_clear_text_refused_before_tls(env: Env) -> None:
    def imap() -> tuple[tuple[str, ...], str]:
        with imaplib.IMAP4("127.0.0.1", env.ports["imap"]) as c:
            caps = c.capabilities
            try:
                c.authenticate("PLAIN", lambda _: f"\0{ALICE}\0{PW}".encode())
            except imaplib.IMAP4.error as exc:
                return caps, str(exc)
            return caps, "logged in"

    def pop3() -> list[str]:
        with socket.create_connection(("127.0.0.1", env.ports["pop3"]), timeout=10) as s:
            f = s.makefile("rb")
            out = [f.readline().decode().rstrip()]
            s.sendall(b"CAPA\r\n")
            while (line := f.readline().decode().rstrip()) != ".":
                out.append(line)
            ir = base64.b64encode(f"\0{ALICE}\0{PW}".encode())
            for command in (b"AUTH PLAIN " + ir, b"AUTH NTLM", b"USER alice"):
                s.sendall(command + b"\r\n")
                out.append(f.readline().decode().rstrip())
            return out

    caps, error = await asyncio.to_thread(imap)
    assert "LOGINDISABLED" in caps and not any(c.startswith("AUTH=") for c in caps)
    assert "PRIVACYREQUIRED" in error
    lines = await asyncio.to_thread(pop3)
    assert not any(line.startswith(("SASL", "USER")) for line in lines[1:-3])
    assert all(line.startswith("-ERR") for line in lines[-3:]), lines


@pytest.mark.parametrize("protocol", ["smtp", "imap", "pop3"])
async def test_ntlm_refused_when_the_mailbox_has_ntlm_disabled(env: Env,
                                                               protocol: str) -> None:
    code, transcript = await curl(*curl_url(env, protocol), "--cacert", str(env.ca),
                                  "--login-options", "AUTH=NTLM",
                                  "-u", f"EXAMPLE\\bob:{PW}")
    assert code != 0, transcript
    event = await env.last_audit()
    assert (event.protocol, event.mechanism, event.outcome,
            event.reason) == (protocol, "NTLM", "failure",
                              "NTLM not enabled for the mailbox"), event


@pytest.mark.parametrize("protocol", ["smtp", "imap", "pop3"])
async def test_external_not_offered_without_a_certificate(env: Env, protocol: str) -> None:
    code, transcript = await curl(*curl_url(env, protocol), "--cacert", str(env.ca),
                                  "--login-options", "AUTH=EXTERNAL", "-u", f"{ALICE}:")
    assert code != 0, transcript
    assert "EXTERNAL" not in "".join(line for line in transcript.splitlines()
                                     if line.startswith("< ")), transcript


def _tls_lines(env: Env, port: int, cert: Issued) -> dict[str, str]:
    """EHLO after STARTTLS with a client certificate, then AUTH EXTERNAL."""
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
        s.starttls(context=env.client_tls(cert))
        s.ehlo("client.example.test")
        code, text = s.docmd("AUTH", "EXTERNAL =")
        return {"auth": " ".join(s.esmtp_features.get("auth", "").split()),
                "reply": f"{code} {text.decode()}"}


async def test_external_on_submission_but_never_on_port_25(env: Env) -> None:
    submission = await asyncio.to_thread(_tls_lines, env, env.ports["submission"],
                                         env.alice_cert)
    assert submission == {"auth": "LOGIN PLAIN NTLM EXTERNAL",
                          "reply": "235 2.7.0 Authentication successful"}
    # the Default Frontend does not ask for a certificate: nothing to offer EXTERNAL on
    port25 = await asyncio.to_thread(_tls_lines, env, env.ports["smtp"], env.alice_cert)
    assert "EXTERNAL" not in port25["auth"].split()
    assert port25["reply"].startswith("504 ")
