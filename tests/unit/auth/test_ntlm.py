"""NTLM: message codec, NTLMv2 verification (MIC, channel binding, refusals) and the
SASL and HTTP wrappers, with pyspnego as the real client implementation."""

from __future__ import annotations

import base64
import hashlib
import os
import random
import struct
import time
from pathlib import Path

import pytest
import spnego
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from spnego.channel_bindings import GssChannelBindings

from auth.credentials import NtlmCredential
from auth.errors import MechanismCancelled, MechanismError
from auth.mechanisms.sasl import Authenticate, SaslExchange, SendChallenge
from auth.ntlm.exchange import NtlmServerExchange
from auth.ntlm.http import HttpChallenge, HttpCredential, HttpNtlmState
from auth.ntlm.messages import (
    AV_NB_DOMAIN_NAME,
    AV_TIMESTAMP,
    MAX_MESSAGE_OCTETS,
    MIC_OFFSET,
    NEGOTIATE_TARGET_INFO,
    NEGOTIATE_UNICODE,
    SIGNATURE,
    TargetNames,
    parse_authenticate,
    parse_av_pairs,
)
from auth.ntlm.verify import (
    NtlmExchange,
    channel_bindings_hash,
    tls_server_end_point,
    verify_ntlmv2,
)
from auth.passwords import nt_hash
from tests.ldap_support.slapd import make_ca_and_server

PW = "Secr3t!pässword"
CB_DATA = b"tls-server-end-point:" + bytes(range(32))

def client_step(context: spnego.ContextProxy, token: bytes | None = None) -> bytes:
    """One client step; pyspnego answers None only when it has nothing to send."""
    out = context.step(token)
    assert out is not None
    return out



def client(user: str = "alice", password: str = PW, *, cb: bytes | None = None
           ) -> spnego.ContextProxy:
    return spnego.client(user, password, hostname="mail.example.test", protocol="ntlm",
                         channel_bindings=GssChannelBindings(application_data=cb)
                         if cb else None)


def handshake(user: str = "alice", password: str = PW, *, cb: bytes | None = None,
              server_cb: bytes | None = None, exchange: NtlmServerExchange | None = None
              ) -> NtlmCredential:
    c = client(user, password, cb=cb)
    server = exchange or NtlmServerExchange(channel_binding=server_cb)
    negotiate = client_step(c)
    authenticate = client_step(c, server.challenge(negotiate))
    return server.authenticate(authenticate)


def verify(cred: NtlmCredential, password: str = PW, *, now: float | None = None) -> str:
    result = verify_ntlmv2(cred.exchange, nt_hash(password),
                           now=time.time() if now is None else now)
    return "ok" if result.ok else result.reason


def with_message(cred: NtlmCredential, raw: bytes) -> NtlmCredential:
    ex = cred.exchange
    return NtlmCredential(NtlmExchange(negotiate=ex.negotiate, challenge=ex.challenge,
                                       server_challenge=ex.server_challenge,
                                       authenticate=parse_authenticate(raw),
                                       channel_binding=ex.channel_binding))


# -- verification -------------------------------------------------------------------


@pytest.mark.parametrize("user,login", [("alice", "alice"),
                                        ("EXAMPLE\\alice", "EXAMPLE\\alice"),
                                        ("alice@example.test", "alice@example.test")])
def test_pyspnego_ntlmv2_verifies(user: str, login: str) -> None:
    cred = handshake(user)
    assert cred.login == login
    assert verify(cred) == "ok"
    assert verify(cred, "wrong") == "wrong password"


def test_the_mic_is_present_and_checked() -> None:
    cred = handshake()
    raw = bytearray(cred.exchange.authenticate.raw)
    raw[MIC_OFFSET] ^= 0x01
    assert verify(with_message(cred, bytes(raw))) == "MIC mismatch"


def test_a_field_outside_the_proof_is_protected_by_the_mic() -> None:
    cred = handshake()
    raw = bytearray(cred.exchange.authenticate.raw)
    (length, _, offset) = struct.unpack_from("<HHI", raw, 44)  # Workstation
    assert length
    raw[offset] ^= 0x01
    assert verify(with_message(cred, bytes(raw))) == "MIC mismatch"


def test_the_user_name_is_bound_to_the_proof() -> None:
    cred = handshake("alice")
    raw = bytearray(cred.exchange.authenticate.raw)
    (_, _, offset) = struct.unpack_from("<HHI", raw, 36)  # UserName (UTF-16LE)
    raw[offset:offset + 2] = "b".encode("utf-16-le")
    assert verify(with_message(cred, bytes(raw))) == "wrong password"


def test_replay_to_another_exchange_fails() -> None:
    c = client()
    first = NtlmServerExchange()
    authenticate = client_step(c, first.challenge(client_step(c)))
    second = NtlmServerExchange()
    second.challenge(client_step(client()))
    assert verify(second.authenticate(authenticate)) == "wrong password"
    assert verify(first.authenticate(authenticate)) == "ok"


def test_server_challenges_are_random_per_exchange() -> None:
    negotiate = client_step(client())
    challenges = {NtlmServerExchange().challenge(negotiate)[24:32] for _ in range(20)}
    assert len(challenges) == 20


def test_challenge_is_unicode_with_target_info_and_timestamp() -> None:
    negotiate = client_step(client())
    names = TargetNames(netbios_computer="MAIL1", netbios_domain="EXAMPLE",
                        dns_computer="mail1.example.test", dns_domain="example.test")
    challenge = NtlmServerExchange(names=names).challenge(negotiate)
    (flags,) = struct.unpack_from("<I", challenge, 20)
    assert flags & NEGOTIATE_UNICODE and flags & NEGOTIATE_TARGET_INFO
    length, _, offset = struct.unpack_from("<HHI", challenge, 40)
    pairs = parse_av_pairs(challenge[offset:offset + length])
    assert pairs[AV_NB_DOMAIN_NAME] == "EXAMPLE".encode("utf-16-le")
    assert len(pairs[AV_TIMESTAMP]) == 8


def test_ntlmv1_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LM_COMPAT_LEVEL", "1")  # pyspnego then answers with NTLMv1
    cred = handshake()
    assert cred.exchange.authenticate.is_ntlmv1
    assert verify(cred) == "NTLMv1 refused"


def anonymous_authenticate() -> bytes:
    header = SIGNATURE + struct.pack("<I", 3)
    fields = b""
    offset = 88
    for _ in range(6):
        fields += struct.pack("<HHI", 0, 0, offset)
    # LmChallengeResponse Z(1) (MS-NLMP §3.2.5.1.2 anonymous form)
    fields = struct.pack("<HHI", 1, 1, offset) + fields[8:]
    return (header + fields + struct.pack("<I", 0x00000A01 | NEGOTIATE_UNICODE)
            + b"\x00" * 24 + b"\x00")


def test_anonymous_ntlm_is_refused() -> None:
    server = NtlmServerExchange()
    server.challenge(client_step(client()))
    cred = server.authenticate(anonymous_authenticate())
    assert cred.exchange.authenticate.anonymous
    assert verify(cred) == "anonymous NTLM refused"


def test_client_timestamp_must_be_plausible() -> None:
    cred = handshake()
    assert verify(cred, now=time.time() + 7200) == \
        "NTLMv2 client timestamp outside the allowed skew"


def test_exchange_expires() -> None:
    now = [1000.0]
    server = NtlmServerExchange(clock=lambda: now[0])
    c = client()
    authenticate = client_step(c, server.challenge(client_step(c)))
    now[0] += 121
    with pytest.raises(MechanismError, match="expired"):
        server.authenticate(authenticate)


# -- channel binding ----------------------------------------------------------------


def test_matching_channel_binding() -> None:
    expected = channel_bindings_hash(CB_DATA)
    assert verify(handshake(cb=CB_DATA, server_cb=expected)) == "ok"


def test_channel_binding_for_another_tls_channel_is_refused() -> None:
    other = channel_bindings_hash(b"tls-server-end-point:" + b"\x01" * 32)
    assert verify(handshake(cb=CB_DATA, server_cb=other)) == "channel binding mismatch"


def test_channel_binding_on_a_connection_without_tls_is_refused() -> None:
    assert verify(handshake(cb=CB_DATA, server_cb=None)) == \
        "channel binding sent without a TLS channel"


def test_clients_without_channel_binding_still_work_over_tls() -> None:
    assert verify(handshake(server_cb=channel_bindings_hash(CB_DATA))) == "ok"


def test_tls_server_end_point_uses_sha256_for_sha256_certificates(tmp_path: Path) -> None:
    _, cert_path, _ = make_ca_and_server(tmp_path)
    der = x509.load_pem_x509_certificate(cert_path.read_bytes()).public_bytes(
        serialization.Encoding.DER)
    assert tls_server_end_point(der) == b"tls-server-end-point:" + \
        hashlib.sha256(der).digest()


# -- malformed input ----------------------------------------------------------------


@pytest.mark.parametrize("data", [
    b"", b"NTLMSSP", b"NTLMSSP\x00", b"XXXXXXX\x00\x01\x00\x00\x00" + b"\x00" * 20,
    SIGNATURE + struct.pack("<I", 3) + b"\x00" * 20,
    SIGNATURE + b"\x00" * (MAX_MESSAGE_OCTETS + 1),
])
def test_malformed_negotiate(data: bytes) -> None:
    with pytest.raises(MechanismError):
        NtlmServerExchange().challenge(data)


def test_malformed_authenticate_fields() -> None:
    good = handshake().exchange.authenticate.raw
    bad_offset = bytearray(good)
    struct.pack_into("<HHI", bad_offset, 20, 500, 500, len(good) - 10)
    odd_user = bytearray(good)
    length, _, offset = struct.unpack_from("<HHI", good, 36)
    struct.pack_into("<HHI", odd_user, 36, length - 1, length - 1, offset)
    bad_key = bytearray(good)
    struct.pack_into("<HHI", bad_key, 52, 5, 5, 64)
    for data in (bytes(bad_offset), bytes(odd_user), bytes(bad_key), good[:63]):
        with pytest.raises(MechanismError):
            parse_authenticate(data)


def test_random_garbage_only_raises_mechanism_errors() -> None:
    rng = random.Random(6)
    base = handshake()
    good = base.exchange.authenticate.raw
    for _ in range(2000):
        data = bytearray(good)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        try:
            cred = with_message(base, bytes(data))
        except MechanismError:
            continue
        assert verify(cred) != "ok" or bytes(data) == good


def test_authenticate_out_of_order() -> None:
    with pytest.raises(MechanismError):
        NtlmServerExchange().authenticate(b"NTLMSSP\x00")


# -- SASL -----------------------------------------------------------------------------


def test_sasl_ntlm_without_initial_response() -> None:
    c = client()
    exchange = SaslExchange.create("ntlm", allowed=frozenset({"PLAIN", "NTLM"}))
    assert exchange.mechanism.plaintext is False
    step = exchange.begin(None)
    assert step == SendChallenge("")
    step = exchange.feed(base64.b64encode(client_step(c)))
    assert isinstance(step, SendChallenge)
    answer = client_step(c, base64.b64decode(step.text))
    done = exchange.feed(base64.b64encode(answer).decode() + "\r\n")
    assert isinstance(done, Authenticate) and isinstance(done.credential, NtlmCredential)
    assert verify(done.credential) == "ok"
    with pytest.raises(MechanismError):
        exchange.feed("")


def test_sasl_ntlm_with_initial_response_and_channel_binding() -> None:
    c = client(cb=CB_DATA)
    exchange = SaslExchange.create("NTLM", channel_binding=channel_bindings_hash(CB_DATA))
    step = exchange.begin(base64.b64encode(client_step(c)).decode())
    assert isinstance(step, SendChallenge)
    answer = client_step(c, base64.b64decode(step.text))
    done = exchange.feed(base64.b64encode(answer))
    assert isinstance(done, Authenticate) and isinstance(done.credential, NtlmCredential)
    assert verify(done.credential) == "ok"


def test_sasl_ntlm_not_offered_and_cancel() -> None:
    with pytest.raises(MechanismError):
        SaslExchange.create("NTLM", allowed=frozenset({"PLAIN"}))
    exchange = SaslExchange.create("NTLM")
    exchange.begin(None)
    with pytest.raises(MechanismCancelled):
        exchange.feed("*")


def test_sasl_ntlm_garbage() -> None:
    exchange = SaslExchange.create("NTLM")
    exchange.begin(None)
    with pytest.raises(MechanismError):
        exchange.feed(base64.b64encode(b"hello"))
    with pytest.raises(MechanismError):  # the exchange is over after an error
        exchange.feed(base64.b64encode(client_step(client())))


# -- HTTP -----------------------------------------------------------------------------


def http_handshake(state: HttpNtlmState, scheme: str = "NTLM",
                   conn: str = "c-1") -> HttpCredential:
    c = client()
    step = state.feed(f"{scheme} {base64.b64encode(client_step(c)).decode()}",
                      connection_id=conn)
    assert isinstance(step, HttpChallenge)
    got_scheme, _, token = step.www_authenticate.partition(" ")
    assert got_scheme == scheme
    answer = client_step(c, base64.b64decode(token))
    done = state.feed(f"{scheme} {base64.b64encode(answer).decode()}", connection_id=conn)
    assert isinstance(done, HttpCredential)
    return done


def test_http_ntlm_and_negotiate_carrying_raw_ntlm() -> None:
    state = HttpNtlmState(connection_id="c-1", tls=True)
    assert state.offers() == ("Negotiate", "NTLM")
    assert verify(http_handshake(state).credential) == "ok"
    assert verify(http_handshake(state, "Negotiate").credential) == "ok"  # and again


def test_http_state_is_bound_to_its_connection() -> None:
    state = HttpNtlmState(connection_id="c-1", tls=True)
    with pytest.raises(MechanismError, match="another connection"):
        http_handshake(state, conn="c-2")


def test_http_ntlm_never_on_plain_http() -> None:
    state = HttpNtlmState(connection_id="c-1", tls=False)
    assert state.offers() == ()
    with pytest.raises(MechanismError, match="without TLS"):
        http_handshake(state)


def test_http_refusals() -> None:
    state = HttpNtlmState(connection_id="c-1", tls=True)
    c = client()
    authenticate_first = base64.b64encode(os.urandom(8)).decode()
    for value in ("Basic YTpi", "NTLM", f"NTLM {authenticate_first}", "NTLM ***",
                  "Negotiate YIIBFgYGKwYBBQUCoIIBCjCCAQag", "NTLM " + "A" * 9000):
        with pytest.raises(MechanismError):
            state.feed(value, connection_id="c-1")
    negotiate = client_step(c)
    auth3 = handshake().exchange.authenticate.raw
    with pytest.raises(MechanismError, match="without a CHALLENGE"):
        state.feed("NTLM " + base64.b64encode(auth3).decode(), connection_id="c-1")
    assert isinstance(state.feed("NTLM " + base64.b64encode(negotiate).decode(),
                                 connection_id="c-1"), HttpChallenge)


# -- SPNEGO (Negotiate) ----------------------------------------------------------------


def negotiate_header(token: bytes) -> str:
    return "Negotiate " + base64.b64encode(token).decode()


def server_token(step: HttpChallenge | str) -> bytes:
    value = step.www_authenticate if isinstance(step, HttpChallenge) else step
    scheme, _, token = value.partition(" ")
    assert scheme == "Negotiate"
    return base64.b64decode(token)


def spnego_login(state: HttpNtlmState, password: str = PW
                 ) -> tuple[spnego.ContextProxy, HttpCredential]:
    c = spnego.client("alice", password, protocol="negotiate")
    step = state.feed(negotiate_header(client_step(c)), connection_id="c-1")
    assert isinstance(step, HttpChallenge)
    answer = client_step(c, server_token(step))
    done = state.feed(negotiate_header(answer), connection_id="c-1")
    assert isinstance(done, HttpCredential) and done.scheme == "Negotiate"
    return c, done


def accept(done: HttpCredential, password: str = PW) -> str:
    """What the AuthService does on success: verify, keep the session key."""
    result = verify_ntlmv2(done.credential.exchange, nt_hash(password), now=time.time())
    done.credential.outcome.session_key = result.session_key
    return "ok" if result.ok else result.reason


def test_negotiate_spnego_with_pyspnego_and_mech_list_mic() -> None:
    state = HttpNtlmState(connection_id="c-1", tls=True)
    c, done = spnego_login(state)
    binding = done.credential.exchange.spnego
    assert binding is not None and binding.client_mic is not None  # checked on verify
    assert accept(done) == "ok"
    final = state.final_header(done)
    assert final is not None
    assert c.step(server_token(final)) is None  # pyspnego checks our mechListMIC
    assert c.complete


def test_a_wrong_server_mech_list_mic_is_detected_by_the_client() -> None:
    state = HttpNtlmState(connection_id="c-1", tls=True)
    c, done = spnego_login(state)
    assert accept(done) == "ok"
    done.credential.outcome.session_key = bytes(16)
    final = state.final_header(done)
    assert final is not None
    with pytest.raises(spnego.exceptions.SpnegoError):
        c.step(server_token(final))


def test_a_tampered_client_mech_list_mic_is_refused() -> None:
    state = HttpNtlmState(connection_id="c-1", tls=True)
    c = spnego.client("alice", PW, protocol="negotiate")
    step = state.feed(negotiate_header(client_step(c)), connection_id="c-1")
    assert isinstance(step, HttpChallenge)
    answer = bytearray(client_step(c, server_token(step)))
    answer[-3] ^= 0x01  # inside the trailing mechListMIC
    done = state.feed(negotiate_header(bytes(answer)), connection_id="c-1")
    assert isinstance(done, HttpCredential)
    assert accept(done) == "SPNEGO mechListMIC mismatch"
    assert accept(done, "wrong") == "wrong password"


def test_final_header_needs_a_verified_credential() -> None:
    state = HttpNtlmState(connection_id="c-1", tls=True)
    _, done = spnego_login(state)
    with pytest.raises(MechanismError):
        state.final_header(done)
    assert state.final_header(http_handshake(state)) is None  # raw NTLM: nothing to add


KRB5_OID = "1.2.840.113554.1.2.2"


def neg_token_init(mechs: list[str], mech_token: bytes | None) -> bytes:
    """A NegTokenInit as a Windows client sends it (RFC 4178 §4.2.1)."""
    from auth.ntlm.spnego import _encode_oid, _tlv

    types = _tlv(0x30, b"".join(_tlv(0x06, _encode_oid(m)) for m in mechs))
    body = _tlv(0xA0, types)
    if mech_token is not None:
        body += _tlv(0xA2, _tlv(0x04, mech_token))
    inner = _tlv(0x06, _encode_oid("1.3.6.1.5.5.2")) + _tlv(0xA0, _tlv(0x30, body))
    return _tlv(0x60, inner)


def test_ntlm_not_first_choice_requires_the_mech_list_mic() -> None:
    """RFC 4178 §5: when NTLM is not the client's preferred mechanism the server
    asks for the MIC (request-mic) and refuses an AUTHENTICATE without one."""
    from auth.ntlm.spnego import NTLMSSP_OID, REQUEST_MIC, neg_token_resp

    state = HttpNtlmState(connection_id="c-1", tls=True)
    kerberos_token = b"\x60\x03\x06\x01\x00"  # an optimistic token we cannot use
    step = state.feed(negotiate_header(neg_token_init([KRB5_OID, NTLMSSP_OID],
                                                      kerberos_token)), connection_id="c-1")
    assert isinstance(step, HttpChallenge)
    reply = server_token(step)
    assert reply[:2] == b"\xa1" + bytes([len(reply) - 2]) and bytes([0x0A, 1, REQUEST_MIC]) \
        in reply
    c = client()
    step = state.feed(negotiate_header(neg_token_resp(1, token=client_step(c))),
                      connection_id="c-1")
    assert isinstance(step, HttpChallenge)
    challenge = parse_client_token_resp(server_token(step))
    answer = client_step(c, challenge)
    done = state.feed(negotiate_header(neg_token_resp(1, token=answer)), connection_id="c-1")
    assert isinstance(done, HttpCredential)
    assert accept(done) == "SPNEGO mechListMIC missing"


def parse_client_token_resp(token: bytes) -> bytes:
    from auth.ntlm.spnego import parse_client_token

    inner = parse_client_token(token).mech_token
    assert inner is not None
    return inner


@pytest.mark.parametrize("token", [
    b"\x60\x02\x06\x00", b"\xa1\x05\x30\x03\xa2\x01", b"\x30\x00", b"\xa1\x00\x00",
    b"\x60\x84\xff\xff\xff\xff",
])
def test_malformed_spnego_is_a_mechanism_error(token: bytes) -> None:
    state = HttpNtlmState(connection_id="c-1", tls=True)
    with pytest.raises(MechanismError):
        state.feed(negotiate_header(token), connection_id="c-1")


def test_spnego_without_ntlm_is_refused() -> None:
    state = HttpNtlmState(connection_id="c-1", tls=True)
    with pytest.raises(MechanismError, match="no NTLM"):
        state.feed(negotiate_header(neg_token_init([KRB5_OID], b"x")), connection_id="c-1")
