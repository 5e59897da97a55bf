"""Client-certificate identities, mapping to mailboxes, the AuthService path and SASL
EXTERNAL (RFC 4422 appendix A), against the real store (both engines)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID

from auth.certificates import (
    CertificateAuthenticator,
    CertificateCredential,
    CertificateError,
    CertificateMapper,
    parse_certificate,
)
from auth.directories.local import LocalDirectory
from auth.errors import AuthenticationFailed, MechanismError
from auth.hashing import HashRunner
from auth.mechanisms.external import ExternalMechanism, external_exchange, offer_external
from auth.mechanisms.sasl import Authenticate, SendChallenge
from auth.service import AuthService
from tests.pki import TestCa, TestPki

ALICE = "alice@example.test"
BOB = "bob@example.test"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    return TestPki(Path(tmp_path_factory.mktemp("pki")))


@pytest.fixture(scope="module")
def ca(pki: TestPki) -> TestCa:
    return pki.ca("Unit CA")


async def _nosleep(_seconds: float) -> None:
    return None


@pytest.fixture
async def env(store: Any) -> Any:
    await store.org.create_accepted_domain("example", "example.test")
    alice = await store.org.create_mailbox(name="alice", primary_smtp_address=ALICE)
    bob = await store.org.create_mailbox(name="bob", primary_smtp_address=BOB,
                                         email_addresses=("robert@example.test",))
    runner = HashRunner(max_workers=1)
    service = AuthService(LocalDirectory(store.org, runner), store.auth_state,
                          sleep=_nosleep)
    service.certificates = CertificateMapper(store.org)

    class Env:
        pass

    e = Env()
    e.store, e.alice, e.bob, e.service = store, alice, bob, service  # type: ignore[attr-defined]
    yield e
    runner.close()


def test_identities_are_read(pki: TestPki, ca: TestCa) -> None:
    cert = pki.client(ca, "Alice Example", email=ALICE, upn="alice@corp.example.test",
                      subject_email="alice.subject@example.test", file_name="ident")
    ident = parse_certificate(cert.der)
    assert ident.rfc822_names == (ALICE,)
    assert ident.upns == ("alice@corp.example.test",)
    assert ident.subject_emails == ("alice.subject@example.test",)
    assert "CN=Alice Example" in ident.subject
    assert ident.client_auth and ident.signature_allowed
    assert len(ident.thumbprint) == 40 and len(ident.sha256) == 64


def test_garbage_and_missing_certificates_are_errors() -> None:
    with pytest.raises(CertificateError):
        parse_certificate(b"")
    with pytest.raises(CertificateError):
        parse_certificate(b"\x30\x03\x02\x01\x00")
    with pytest.raises(CertificateError):
        parse_certificate(b"\x30" * 20_000)


async def test_implicit_mapping_by_upn_rfc822_and_subject_email(
        env: Any, pki: TestPki, ca: TestCa) -> None:
    mapper = env.service.certificates
    by_upn = await mapper.map(pki.client(ca, "a1", upn=ALICE).der)
    assert (by_upn.mailbox_id, by_upn.how) == (env.alice.id, f"upn {ALICE}")
    by_mail = await mapper.map(pki.client(ca, "b1", email="Robert@Example.TEST").der)
    assert by_mail.mailbox_id == env.bob.id and by_mail.login == env.bob.user_principal_name
    by_subject = await mapper.map(pki.client(ca, "b2", subject_email=BOB).der)
    assert by_subject.mailbox_id == env.bob.id
    nobody = await mapper.map(pki.client(ca, "x", email="nobody@example.test").der)
    assert nobody.login is None and nobody.reason == "certificate maps to no mailbox"


async def test_explicit_mappings_win_and_are_removable(
        env: Any, pki: TestPki, ca: TestCa) -> None:
    org, mapper = env.store.org, env.service.certificates
    cert = pki.client(ca, "shared-device", email=BOB)
    ident = parse_certificate(cert.der)
    await org.add_certificate_mapping(env.alice.id, "thumbprint", ident.thumbprint.upper())
    match = await mapper.map(cert.der)
    assert (match.mailbox_id, match.how) == (env.alice.id, "explicit thumbprint")
    await org.remove_certificate_mapping(env.alice.id, "thumbprint", ident.thumbprint)
    assert (await mapper.map(cert.der)).mailbox_id == env.bob.id
    other = pki.client(ca, "Kiosk 7")
    await org.add_certificate_mapping(env.alice.id, "subject", parse_certificate(
        other.der).subject)
    assert (await mapper.map(other.der)).mailbox_id == env.alice.id


async def test_ambiguous_identities_are_refused(env: Any, pki: TestPki, ca: TestCa) -> None:
    cert = pki.client(ca, "confused", upn=ALICE, email=BOB)
    match = await env.service.certificates.map(cert.der)
    assert match.login is None and "2 different mailboxes" in match.reason


@pytest.mark.parametrize("eku", [None, (ExtendedKeyUsageOID.SERVER_AUTH,),
                                 (ExtendedKeyUsageOID.EMAIL_PROTECTION,)])
async def test_client_auth_eku_is_required(env: Any, pki: TestPki, ca: TestCa,
                                           eku: Any) -> None:
    cert = pki.client(ca, "no-eku", email=ALICE, eku=eku)
    match = await env.service.certificates.map(cert.der)
    assert match.login is None and "clientAuth" in match.reason


async def test_expired_certificate_is_refused(env: Any, pki: TestPki, ca: TestCa) -> None:
    cert = pki.client(ca, "old", email=ALICE, expired=True)
    match = await env.service.certificates.map(cert.der)
    assert match.reason == "certificate expired"


async def test_service_turns_a_certificate_into_a_principal_with_audit(
        env: Any, pki: TestPki, ca: TestCa) -> None:
    cert = pki.client(ca, "alice-phone", email=ALICE)
    principal = await env.service.authenticate(
        CertificateCredential(cert.der), protocol="imap", mechanism="EXTERNAL",
        source_ip="192.0.2.7")
    assert principal.mailbox_id == env.alice.id and not principal.is_anonymous
    [event] = await env.store.auth_state.list_audit(limit=1)
    assert (event.event, event.mechanism, event.mailbox_id) == ("success", "EXTERNAL",
                                                                 env.alice.id)
    assert "certificate rfc822" in event.reason


async def test_service_refusals(env: Any, pki: TestPki, ca: TestCa) -> None:
    cert = pki.client(ca, "alice-laptop", email=ALICE)

    async def attempt(**kw: Any) -> str:
        with pytest.raises(AuthenticationFailed):
            await env.service.authenticate(
                CertificateCredential(kw.pop("der", cert.der), authzid=kw.pop("authzid",
                                                                              None)),
                protocol=kw.pop("protocol", "imap"), mechanism="EXTERNAL",
                source_ip="192.0.2.8")
        [event] = await env.store.auth_state.list_audit(limit=1)
        return str(event.reason)

    assert await attempt(authzid=BOB) == "authorization identity not permitted"
    ok = await env.service.authenticate(CertificateCredential(cert.der, authzid=ALICE),
                                        protocol="imap", mechanism="EXTERNAL",
                                        source_ip="192.0.2.8")
    assert ok.mailbox_id == env.alice.id
    await env.store.org.update_mailbox(env.alice.id, imap_enabled=False)
    assert await attempt() == "protocol imap disabled for the mailbox"
    assert await attempt(der=b"") == "no client certificate on the connection"
    env.service.certificates = None
    assert await attempt(protocol="pop3") == "client certificates not enabled"


async def test_authenticator_caches_successes_only(env: Any, pki: TestPki,
                                                   ca: TestCa) -> None:
    now = [1000.0]
    authn = CertificateAuthenticator(env.service, cache_ttl=60, clock=lambda: now[0])
    cert = pki.client(ca, "alice-tablet", email=ALICE)
    first = await authn.authenticate(cert.der, protocol="activesync", source_ip="192.0.2.9")
    second = await authn.authenticate(cert.der, protocol="activesync",
                                      source_ip="192.0.2.9")
    assert first == second
    audit = await env.store.auth_state.list_audit(limit=10)
    assert [e.event for e in audit] == ["success"]
    now[0] += 61
    await authn.authenticate(cert.der, protocol="activesync", source_ip="192.0.2.9")
    assert len(await env.store.auth_state.list_audit(limit=10)) == 2
    stranger = pki.client(ca, "stranger", email="nobody@example.test")
    for _ in range(2):
        with pytest.raises(AuthenticationFailed):
            await authn.authenticate(stranger.der, protocol="activesync",
                                     source_ip="192.0.2.9")
    assert len(await env.store.auth_state.list_audit(limit=10)) == 4


# --- SASL EXTERNAL (RFC 4422 appendix A) -------------------------------------------

def test_external_without_initial_response_sends_an_empty_challenge() -> None:
    exchange = external_exchange(b"DER")
    step = exchange.begin(None)
    assert step == SendChallenge("")
    done = exchange.feed(b"")
    assert isinstance(done, Authenticate)
    assert done.credential == CertificateCredential(b"DER", authzid=None)


def test_external_initial_response_carries_the_authzid() -> None:
    step = external_exchange(b"DER").begin(base64.b64encode(ALICE.encode()))
    assert isinstance(step, Authenticate)
    assert step.credential == CertificateCredential(b"DER", authzid=ALICE)
    empty = external_exchange(b"DER").begin("=")
    assert isinstance(empty, Authenticate) and empty.credential.authzid is None  # type: ignore[attr-defined]


def test_external_refuses_bad_messages_and_is_single_use() -> None:
    with pytest.raises(MechanismError):
        external_exchange(b"DER").begin(base64.b64encode(b"a\x00b"))
    with pytest.raises(MechanismError):
        external_exchange(b"DER").begin(base64.b64encode(b"\xff\xfe"))
    mech = ExternalMechanism(b"DER")
    mech.start(b"")
    with pytest.raises(MechanismError):
        mech.respond(b"")
    assert not ExternalMechanism.plaintext
    assert offer_external(b"DER") and not offer_external(None) and not offer_external(b"")


def test_credential_repr_hides_the_certificate() -> None:
    cred = CertificateCredential(b"\x30\x82secret-looking", authzid=ALICE)
    assert "secret" not in repr(cred) and "secret" not in str(cred)


async def test_certificate_refusals_are_tarpitted_but_never_counted(
        env: Any, pki: TestPki, ca: TestCa) -> None:
    """An unmapped device behind a shared address must not lock the address out."""
    sleeps: list[float] = []

    async def record(seconds: float) -> None:
        sleeps.append(seconds)

    env.service._sleep = record
    stranger = pki.client(ca, "unmapped-device", email="nobody@example.test")
    for _ in range(52):  # more than the source threshold (50)
        with pytest.raises(AuthenticationFailed):
            await env.service.authenticate(CertificateCredential(stranger.der),
                                           protocol="activesync",
                                           mechanism="ClientCertificate",
                                           source_ip="198.51.100.1")
    assert sleeps == [2.0] * 52
    assert await env.store.auth_state.get_counters(["src:198.51.100.1"]) == {}
    alice = pki.client(ca, "alice-desk", email=ALICE)
    principal = await env.service.authenticate(
        CertificateCredential(alice.der), protocol="activesync",
        mechanism="ClientCertificate", source_ip="198.51.100.1")
    assert principal.mailbox_id == env.alice.id
