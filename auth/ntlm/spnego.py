"""SPNEGO (RFC 4178, MS-SPNG) carrying NTLM, the ``Negotiate`` HTTP scheme.

Role: decode the client's NegTokenInit / NegTokenResp, encode the server's
NegTokenResp, and compute or check the mechListMIC (RFC 4178 §5) with NTLM's
signature (MS-NLMP §3.4.4.2, extended session security). Only NTLMSSP
(1.3.6.1.4.1.311.2.2.10) is ever selected; Kerberos is not offered.

Invariants: a strict, bounds-checked DER reader (definite lengths only, nothing past
the end); every malformed token raises ``MechanismError``; tokens longer than
``MAX_TOKEN_OCTETS`` are refused.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass, field

from auth.errors import MechanismError

MAX_TOKEN_OCTETS = 6144
SPNEGO_OID = "1.3.6.1.5.5.2"
NTLMSSP_OID = "1.3.6.1.4.1.311.2.2.10"

ACCEPT_COMPLETED = 0
ACCEPT_INCOMPLETE = 1
REJECT = 2
REQUEST_MIC = 3


# -- DER (X.690) --------------------------------------------------------------------


def _read_tlv(data: bytes, at: int) -> tuple[int, bytes, int]:
    """(tag, value, next offset) of the element at ``at``."""
    if at + 2 > len(data):
        raise MechanismError("SPNEGO token truncated")
    tag = data[at]
    first = data[at + 1]
    at += 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 3 or at + count > len(data):
            raise MechanismError("SPNEGO length not supported")
        length = int.from_bytes(data[at:at + count], "big")
        at += count
    if at + length > len(data):
        raise MechanismError("SPNEGO element outside the token")
    return tag, data[at:at + length], at + length


def _elements(data: bytes) -> list[tuple[int, bytes, bytes]]:
    """(tag, value, whole encoding) of each element in ``data``."""
    out = []
    at = 0
    while at < len(data):
        start = at
        tag, value, at = _read_tlv(data, at)
        out.append((tag, value, data[start:at]))
    return out


def _oid(value: bytes) -> str:
    if not value:
        raise MechanismError("empty OID")
    parts = [value[0] // 40, value[0] % 40]
    n = 0
    for byte in value[1:]:
        n = (n << 7) | (byte & 0x7F)
        if not byte & 0x80:
            parts.append(n)
            n = 0
    return ".".join(map(str, parts))


def _encode_oid(oid: str) -> bytes:
    nums = [int(p) for p in oid.split(".")]
    out = bytearray([nums[0] * 40 + nums[1]])
    for n in nums[2:]:
        chunk = [n & 0x7F]
        n >>= 7
        while n:
            chunk.append(0x80 | (n & 0x7F))
            n >>= 7
        out += bytes(reversed(chunk))
    return bytes(out)


def _tlv(tag: int, value: bytes) -> bytes:
    n = len(value)
    if n < 0x80:
        return bytes([tag, n]) + value
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + value


# -- tokens ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ClientToken:
    """What a client's SPNEGO token holds (init: ``mech_types`` set)."""

    mech_types: tuple[str, ...] = ()
    mech_types_der: bytes = field(default=b"", repr=False)
    mech_token: bytes | None = field(default=None, repr=False)
    mech_list_mic: bytes | None = field(default=None, repr=False)

    @property
    def is_init(self) -> bool:
        return bool(self.mech_types)


def parse_client_token(token: bytes) -> ClientToken:
    """A NegTokenInit (in its GSS-API framing, RFC 2743 §3.1) or a NegTokenResp."""
    if len(token) > MAX_TOKEN_OCTETS:
        raise MechanismError(f"SPNEGO token longer than {MAX_TOKEN_OCTETS} octets")
    tag, value, end = _read_tlv(token, 0)
    if end != len(token):
        raise MechanismError("trailing data after the SPNEGO token")
    if tag == 0x60:  # [APPLICATION 0] InitialContextToken
        parts = _elements(value)
        if len(parts) != 2 or parts[0][0] != 0x06 or _oid(parts[0][1]) != SPNEGO_OID \
                or parts[1][0] != 0xA0:
            raise MechanismError("not a SPNEGO NegTokenInit")
        return _neg_token_init(parts[1][1])
    if tag == 0xA1:
        return _neg_token_resp(value)
    raise MechanismError("not a SPNEGO token")


def _sequence(value: bytes) -> dict[int, tuple[bytes, bytes]]:
    parts = _elements(value)
    if len(parts) != 1 or parts[0][0] != 0x30:
        raise MechanismError("SPNEGO SEQUENCE expected")
    fields: dict[int, tuple[bytes, bytes]] = {}
    for tag, inner, _whole in _elements(parts[0][1]):
        if tag & 0xE0 != 0xA0:
            raise MechanismError("SPNEGO context tag expected")
        fields[tag & 0x1F] = (inner, _whole)
    return fields


def _octets(inner: bytes) -> bytes:
    parts = _elements(inner)
    if len(parts) != 1 or parts[0][0] != 0x04:
        raise MechanismError("SPNEGO OCTET STRING expected")
    return parts[0][1]


def _neg_token_init(value: bytes) -> ClientToken:
    fields = _sequence(value)
    if 0 not in fields:
        raise MechanismError("NegTokenInit without mechTypes")
    types_inner = fields[0][0]
    outer = _elements(types_inner)
    if len(outer) != 1 or outer[0][0] != 0x30:
        raise MechanismError("mechTypes is not a SEQUENCE")
    mechs = tuple(_oid(v) for tag, v, _ in _elements(outer[0][1]) if tag == 0x06)
    if not mechs:
        raise MechanismError("NegTokenInit lists no mechanism")
    return ClientToken(mech_types=mechs, mech_types_der=outer[0][2],
                       mech_token=_octets(fields[2][0]) if 2 in fields else None,
                       mech_list_mic=_octets(fields[3][0]) if 3 in fields else None)


def _neg_token_resp(value: bytes) -> ClientToken:
    fields = _sequence(value)
    return ClientToken(mech_token=_octets(fields[2][0]) if 2 in fields else None,
                       mech_list_mic=_octets(fields[3][0]) if 3 in fields else None)


def neg_token_resp(state: int, *, supported_mech: bool = False, token: bytes | None = None,
                   mic: bytes | None = None) -> bytes:
    """The server's NegTokenResp (RFC 4178 §4.2.2)."""
    body = _tlv(0xA0, _tlv(0x0A, bytes([state])))
    if supported_mech:
        body += _tlv(0xA1, _tlv(0x06, _encode_oid(NTLMSSP_OID)))
    if token is not None:
        body += _tlv(0xA2, _tlv(0x04, token))
    if mic is not None:
        body += _tlv(0xA3, _tlv(0x04, mic))
    return _tlv(0xA1, _tlv(0x30, body))


def rc4(key: bytes, data: bytes) -> bytes:
    """RC4 from a fresh key schedule: NTLM uses it for the 16-octet session key
    (§3.4.5.3 RC4K) and the first signature checksum in each direction."""
    s = list(range(256))
    j = 0
    for i in range(256):
        j = (j + s[i] + key[i % len(key)]) & 0xFF
        s[i], s[j] = s[j], s[i]
    out = bytearray()
    i = j = 0
    for byte in data:
        i = (i + 1) & 0xFF
        j = (j + s[i]) & 0xFF
        s[i], s[j] = s[j], s[i]
        out.append(byte ^ s[(s[i] + s[j]) & 0xFF])
    return bytes(out)


# -- mechListMIC with NTLM signatures (MS-NLMP §3.4.4.2, §3.4.5) ----------------------

_CLIENT_SIGN = b"session key to client-to-server signing key magic constant\x00"
_SERVER_SIGN = b"session key to server-to-client signing key magic constant\x00"
_CLIENT_SEAL = b"session key to client-to-server sealing key magic constant\x00"
_SERVER_SEAL = b"session key to server-to-client sealing key magic constant\x00"
_NEGOTIATE_56 = 0x80000000
_NEGOTIATE_128 = 0x20000000
_NEGOTIATE_KEY_EXCH = 0x40000000


def _md5(data: bytes) -> bytes:
    return hashlib.md5(data).digest()  # noqa: S324 - MS-NLMP §3.4.5 mandates MD5


def ntlm_signature(session_key: bytes, flags: int, message: bytes, *,
                   from_client: bool, seq: int = 0) -> bytes:
    """NTLMSSP_MESSAGE_SIGNATURE with extended session security (§2.2.2.9.1) of the
    first message in one direction (a fresh RC4 handle)."""
    sign_key = _md5(session_key + (_CLIENT_SIGN if from_client else _SERVER_SIGN))
    checksum = hmac.new(sign_key, struct.pack("<I", seq) + message, hashlib.md5).digest()[:8]
    if flags & _NEGOTIATE_KEY_EXCH:
        if flags & _NEGOTIATE_128:
            seal_base = session_key
        elif flags & _NEGOTIATE_56:
            seal_base = session_key[:7]
        else:
            seal_base = session_key[:5]
        seal_key = _md5(seal_base + (_CLIENT_SEAL if from_client else _SERVER_SEAL))
        checksum = rc4(seal_key, checksum)
    return struct.pack("<I", 1) + checksum + struct.pack("<I", seq)
