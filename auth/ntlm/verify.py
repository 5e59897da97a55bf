"""NTLMv2 verification against an NT hash (MS-NLMP §3.3.2, §3.2.5.1.2).

Role: decide whether an AUTHENTICATE_MESSAGE proves knowledge of the password whose NT
hash is given, for the CHALLENGE this server sent; check the MIC (§3.2.5.1.2) when the
client says one is present and the channel bindings (MsvAvChannelBindings, §2.2.2.1,
"Extended Protection") against the TLS channel the caller is on. Pure and CPU-cheap
(a handful of HMAC-MD5s): called on the event loop by the AuthService.

Invariants:
- NTLMv1 / NTLM2-session (24-octet NT response) and anonymous NTLM never verify.
- Comparisons of proofs are constant-time (``hmac.compare_digest``).
- A client channel binding that is present and non-zero must match the caller's
  expected value; one sent where the caller has no TLS channel is refused (the
  client bound the authentication to a TLS session that is not ours: a relay).
- No secret (hash, keys, proofs) is ever logged or put in an exception message.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass, field

from auth.errors import MechanismError
from auth.ntlm.messages import (
    AV_CHANNEL_BINDINGS,
    AV_FLAG_MIC_PRESENT,
    AV_FLAGS,
    MIC_LENGTH,
    MIC_OFFSET,
    NEGOTIATE_KEY_EXCH,
    AuthenticateMessage,
    NegotiateMessage,
    parse_av_pairs,
)
from auth.ntlm.spnego import ntlm_signature, rc4

#: Windows FILETIME epoch offset: 100 ns intervals from 1601-01-01 to 1970-01-01.
_FILETIME_EPOCH = 116444736000000000
#: MS-NLMP §3.1.1.1 MaxLifetime is 36 hours; we allow far less skew between the
#: client's clock and ours for the NTLMv2 client timestamp.
MAX_CLOCK_SKEW = 3600.0
#: Minimum NTLMv2 response: 16-octet NTProofStr + 28-octet NTLMv2_CLIENT_CHALLENGE
#: header (§2.2.2.7) + the MsvAvEOL terminator.
_MIN_V2_RESPONSE = 16 + 28 + 4
_ZERO16 = b"\x00" * 16


def to_filetime(unix: float) -> int:
    """Unix seconds → Windows FILETIME (100 ns since 1601)."""
    return int(unix * 10_000_000) + _FILETIME_EPOCH


def from_filetime(filetime: int) -> float:
    return (filetime - _FILETIME_EPOCH) / 10_000_000


def _hmac_md5(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.md5).digest()


def channel_bindings_hash(application_data: bytes) -> bytes:
    """MD5 of the gss_channel_bindings_struct with empty addresses (§2.2.2.1,
    RFC 2744 §3.11), as clients put it in MsvAvChannelBindings."""
    packed = struct.pack("<IIIII", 0, 0, 0, 0, len(application_data)) + application_data
    return hashlib.md5(packed).digest()  # noqa: S324 - MS-NLMP §2.2.2.1 mandates MD5


def tls_server_end_point(certificate_der: bytes) -> bytes:
    """The RFC 5929 §4.1 ``tls-server-end-point`` channel-binding application data of
    the server certificate: its hash under the certificate's signature hash algorithm,
    SHA-256 when that is MD5 or SHA-1 (or the key type has none, e.g. Ed25519)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    cert = x509.load_der_x509_certificate(certificate_der)
    try:
        algorithm = cert.signature_hash_algorithm
    except Exception:  # an algorithm cryptography cannot name: RFC 5929 default
        algorithm = None
    if algorithm is None or isinstance(algorithm, (hashes.MD5, hashes.SHA1)):
        algorithm = hashes.SHA256()
    digest = hashes.Hash(algorithm)
    digest.update(certificate_der)
    return b"tls-server-end-point:" + digest.finalize()


@dataclass(frozen=True)
class NtlmExchange:
    """Everything one finished three-message exchange holds, for verification.

    ``channel_binding`` is the MD5 the client must put in MsvAvChannelBindings for
    the TLS channel the exchange ran on (``channel_bindings_hash(tls_server_end_point(
    cert))``), or ``None`` when there is no TLS channel.
    """

    negotiate: NegotiateMessage
    challenge: bytes = field(repr=False)
    server_challenge: bytes = field(repr=False)
    authenticate: AuthenticateMessage
    channel_binding: bytes | None = field(default=None, repr=False)
    spnego: SpnegoBinding | None = None


@dataclass(frozen=True)
class SpnegoBinding:
    """The SPNEGO context of an exchange run inside ``Negotiate`` (RFC 4178 §5): the
    DER of the client's mechTypes, the client's mechListMIC if it sent one, and
    whether one is required (NTLM was not the client's first choice)."""

    mech_types_der: bytes = field(repr=False)
    client_mic: bytes | None = field(default=None, repr=False)
    mic_required: bool = False


@dataclass(frozen=True)
class Verification:
    ok: bool
    reason: str = ""
    # The exported session key (MS-NLMP §3.2.5.1.2) after a successful verification:
    # the SPNEGO layer signs its mechListMIC with it. A secret: never logged.
    session_key: bytes | None = field(default=None, repr=False)


def _ntowfv2_candidates(nt_hash: bytes, user: str, domain: str) -> list[bytes]:
    """ResponseKeyNT = NTOWFv2 (§3.3.2) for the domain as sent, then upper-cased, then
    empty: clients differ in the domain they key with (Samba tries the same three)."""
    domains: list[str] = []
    for d in (domain, domain.upper(), ""):
        if d not in domains:
            domains.append(d)
    return [_hmac_md5(nt_hash, (user.upper() + d).encode("utf-16-le")) for d in domains]


def verify_ntlmv2(exchange: NtlmExchange, nt_hash: bytes, *, now: float) -> Verification:
    """Verify the NTLMv2 response of ``exchange`` for ``nt_hash``."""
    msg = exchange.authenticate
    if msg.anonymous:
        return Verification(False, "anonymous NTLM refused")
    if msg.is_ntlmv1:
        return Verification(False, "NTLMv1 refused")
    nt = msg.nt_response
    if len(nt) < _MIN_V2_RESPONSE or nt[16] != 1 or nt[17] != 1:
        return Verification(False, "not an NTLMv2 response")
    proof, blob = nt[:16], nt[16:]
    (client_time,) = struct.unpack_from("<Q", blob, 8)
    try:
        pairs = parse_av_pairs(blob[28:])
    except MechanismError:
        return Verification(False, "malformed NTLMv2 response")

    response_key = None
    for key in _ntowfv2_candidates(nt_hash, msg.user, msg.domain):
        expected = _hmac_md5(key, exchange.server_challenge + blob)
        if hmac.compare_digest(expected, proof):
            response_key = key
            break
    if response_key is None:
        return Verification(False, "wrong password")

    # Freshness: the server challenge is random and single-use, which already defeats
    # replay; the client's timestamp must also be plausible (§3.3.2, MaxLifetime).
    if abs(from_filetime(client_time) - now) > MAX_CLOCK_SKEW:
        return Verification(False, "NTLMv2 client timestamp outside the allowed skew")

    session_key = _exported_session_key(msg, response_key, proof)
    if session_key is None:
        return Verification(False, "malformed session key")
    flags_value = pairs.get(AV_FLAGS, b"")
    av_flags = struct.unpack("<I", flags_value)[0] if len(flags_value) == 4 else 0
    if av_flags & AV_FLAG_MIC_PRESENT:
        if not _mic_ok(exchange, session_key):
            return Verification(False, "MIC mismatch")

    bindings = pairs.get(AV_CHANNEL_BINDINGS)
    if bindings is not None and bindings != _ZERO16:
        if exchange.channel_binding is None:
            return Verification(False, "channel binding sent without a TLS channel")
        if not hmac.compare_digest(bindings, exchange.channel_binding):
            return Verification(False, "channel binding mismatch")
    spnego = exchange.spnego
    if spnego is not None:
        if spnego.client_mic is not None:
            expected_mic = ntlm_signature(session_key, msg.flags, spnego.mech_types_der,
                                          from_client=True)
            if not hmac.compare_digest(expected_mic, spnego.client_mic):
                return Verification(False, "SPNEGO mechListMIC mismatch")
        elif spnego.mic_required:
            return Verification(False, "SPNEGO mechListMIC missing")
    return Verification(True, session_key=session_key)


def _exported_session_key(msg: AuthenticateMessage, response_key: bytes,
                          proof: bytes) -> bytes | None:
    """ExportedSessionKey (§3.2.5.1.2): the SessionBaseKey HMAC_MD5(ResponseKeyNT,
    NTProofStr) is NTLMv2's KeyExchangeKey; with KEY_EXCH the client's random session
    key is unwrapped from EncryptedRandomSessionKey with it."""
    session_base_key = _hmac_md5(response_key, proof)
    if not msg.flags & NEGOTIATE_KEY_EXCH:
        return session_base_key
    if len(msg.encrypted_session_key) != 16:
        return None
    return rc4(session_base_key, msg.encrypted_session_key)


def _mic_ok(exchange: NtlmExchange, exported: bytes) -> bool:
    """MIC = HMAC_MD5(ExportedSessionKey, NEGOTIATE + CHALLENGE + AUTHENTICATE with the
    MIC zeroed) (§3.2.5.1.2, §3.1.5.1.2)."""
    raw = exchange.authenticate.raw
    offsets = [struct.unpack_from("<HHI", raw, at) for at in range(12, 60, 8)]
    payload_start = min((off for length, _, off in offsets if length), default=len(raw))
    if len(raw) < MIC_OFFSET + MIC_LENGTH or payload_start < MIC_OFFSET + MIC_LENGTH:
        return False  # announced, but the header has no room for it
    mic = raw[MIC_OFFSET:MIC_OFFSET + MIC_LENGTH]
    zeroed = raw[:MIC_OFFSET] + _ZERO16 + raw[MIC_OFFSET + MIC_LENGTH:]
    expected = _hmac_md5(exported, exchange.negotiate.raw + exchange.challenge + zeroed)
    return hmac.compare_digest(mic, expected)
