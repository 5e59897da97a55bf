"""The NTLM message wire format (MS-NLMP §2.2), server side.

Role: parse the client's NEGOTIATE_MESSAGE and AUTHENTICATE_MESSAGE, build the
CHALLENGE_MESSAGE with its target information (AV pairs, MS-NLMP §2.2.2.1). Pure
functions over bytes; no cryptography here (``auth.ntlm.verify`` does that).

Invariants: every malformed input raises ``MechanismError`` (never IndexError,
struct.error or UnicodeDecodeError); every field is bounds-checked against the
message; messages longer than ``MAX_MESSAGE_OCTETS`` are refused before parsing.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from auth.errors import MechanismError

SIGNATURE = b"NTLMSSP\x00"
NEGOTIATE = 1
CHALLENGE = 2
AUTHENTICATE = 3

#: Longest NTLM message accepted (a real AUTHENTICATE is well under 2 KiB).
MAX_MESSAGE_OCTETS = 6144
#: Longest user, domain or workstation name accepted (characters).
MAX_NAME_CHARS = 256

# Negotiate flags (MS-NLMP §2.2.2.5).
NEGOTIATE_UNICODE = 0x00000001
NEGOTIATE_OEM = 0x00000002
REQUEST_TARGET = 0x00000004
NEGOTIATE_SIGN = 0x00000010
NEGOTIATE_SEAL = 0x00000020
NEGOTIATE_LM_KEY = 0x00000080
NEGOTIATE_NTLM = 0x00000200
NEGOTIATE_ANONYMOUS = 0x00000800
NEGOTIATE_ALWAYS_SIGN = 0x00008000
TARGET_TYPE_DOMAIN = 0x00010000
NEGOTIATE_EXTENDED_SESSIONSECURITY = 0x00080000
NEGOTIATE_TARGET_INFO = 0x00800000
NEGOTIATE_VERSION = 0x02000000
NEGOTIATE_128 = 0x20000000
NEGOTIATE_KEY_EXCH = 0x40000000
NEGOTIATE_56 = 0x80000000

#: Flags the server echoes when the client asks for them (§3.2.5.1.1). SIGN/SEAL are
#: echoed so clients that ask for them proceed; no session security is ever applied
#: (SASL NTLM and HTTP NTLM have no security layer).
ECHOED_FLAGS = (NEGOTIATE_SIGN | NEGOTIATE_SEAL | NEGOTIATE_ALWAYS_SIGN
                | NEGOTIATE_EXTENDED_SESSIONSECURITY | NEGOTIATE_VERSION | NEGOTIATE_128
                | NEGOTIATE_KEY_EXCH | NEGOTIATE_56)

# AV pair ids (MS-NLMP §2.2.2.1).
AV_EOL = 0
AV_NB_COMPUTER_NAME = 1
AV_NB_DOMAIN_NAME = 2
AV_DNS_COMPUTER_NAME = 3
AV_DNS_DOMAIN_NAME = 4
AV_FLAGS = 6
AV_TIMESTAMP = 7
AV_TARGET_NAME = 9
AV_CHANNEL_BINDINGS = 10

#: MsvAvFlags bit: the AUTHENTICATE message carries a MIC (§2.2.2.1).
AV_FLAG_MIC_PRESENT = 0x00000002

#: Offset of the MIC in an AUTHENTICATE message that has a Version field (§2.2.1.3).
MIC_OFFSET = 72
MIC_LENGTH = 16

# Windows 10 / NTLM revision 15 (§2.2.2.10), the Version field of our CHALLENGE.
_SERVER_VERSION = struct.pack("<BBH3xB", 10, 0, 19041, 15)


def _check_header(data: bytes, expected_type: int, minimum: int) -> None:
    if len(data) > MAX_MESSAGE_OCTETS:
        raise MechanismError(f"NTLM message longer than {MAX_MESSAGE_OCTETS} octets")
    if len(data) < minimum or data[:8] != SIGNATURE:
        raise MechanismError("not an NTLM message")
    (msg_type,) = struct.unpack_from("<I", data, 8)
    if msg_type != expected_type:
        raise MechanismError(f"NTLM message type {msg_type}, expected {expected_type}")


def _field(data: bytes, at: int, what: str) -> bytes:
    """A (Len, MaxLen, Offset) payload field (§2.2.1), bounds-checked."""
    length, _max_len, offset = struct.unpack_from("<HHI", data, at)
    if length == 0:
        return b""
    if offset > len(data) or offset + length > len(data):
        raise MechanismError(f"NTLM {what} field outside the message")
    return data[offset:offset + length]


def _text(raw: bytes, unicode: bool, what: str) -> str:
    try:
        if unicode:
            if len(raw) % 2:
                raise MechanismError(f"NTLM {what} has an odd UTF-16 length")
            text = raw.decode("utf-16-le", "strict")
        else:
            text = raw.decode("ascii", "strict")  # OEM code pages are not guessed at
    except UnicodeDecodeError:
        raise MechanismError(f"NTLM {what} is not valid text") from None
    if len(text) > MAX_NAME_CHARS:
        raise MechanismError(f"NTLM {what} longer than {MAX_NAME_CHARS} characters")
    return text


@dataclass(frozen=True)
class NegotiateMessage:
    """NEGOTIATE_MESSAGE (§2.2.1.1): only the flags matter to the server."""

    flags: int
    raw: bytes = field(repr=False)


def parse_negotiate(data: bytes) -> NegotiateMessage:
    _check_header(data, NEGOTIATE, 16)
    (flags,) = struct.unpack_from("<I", data, 12)
    return NegotiateMessage(flags=flags, raw=bytes(data))


@dataclass(frozen=True)
class TargetNames:
    """Names the server announces in its CHALLENGE target information.

    They are informative for NTLMv2 clients (the response is keyed by the domain the
    *client* sends, not these), but MS-NLMP §3.2.5.1.1 requires the NetBIOS pair.
    """

    netbios_computer: str = "GATEWAY"
    netbios_domain: str = "WORKGROUP"
    dns_computer: str = ""
    dns_domain: str = ""


def av_pairs(pairs: list[tuple[int, bytes]]) -> bytes:
    """Serialise AV pairs and the terminating MsvAvEOL (§2.2.2.1)."""
    out = bytearray()
    for av_id, value in pairs:
        out += struct.pack("<HH", av_id, len(value)) + value
    out += struct.pack("<HH", AV_EOL, 0)
    return bytes(out)


def parse_av_pairs(data: bytes) -> dict[int, bytes]:
    """AV pairs up to MsvAvEOL; ``MechanismError`` when truncated or unterminated.

    A repeated id keeps its first value (the attributes that matter, flags and channel
    bindings, occur once in every genuine client message).
    """
    pairs: dict[int, bytes] = {}
    at = 0
    while True:
        if at + 4 > len(data):
            raise MechanismError("NTLM AV pairs not terminated")
        av_id, length = struct.unpack_from("<HH", data, at)
        at += 4
        if av_id == AV_EOL:
            return pairs
        if at + length > len(data):
            raise MechanismError("NTLM AV pair outside the message")
        pairs.setdefault(av_id, data[at:at + length])
        at += length


def build_challenge(negotiate: NegotiateMessage, server_challenge: bytes,
                    names: TargetNames, filetime: int) -> bytes:
    """The CHALLENGE_MESSAGE (§2.2.1.2) answering ``negotiate``.

    Always Unicode and always with target information including MsvAvTimestamp
    (§3.2.5.1.1), which makes clients compute NTLMv2 responses (and send a zero LMv2
    response, §3.1.5.1.2).
    """
    if len(server_challenge) != 8:
        raise ValueError("the server challenge is 8 octets")
    flags = (NEGOTIATE_UNICODE | NEGOTIATE_NTLM | NEGOTIATE_TARGET_INFO
             | TARGET_TYPE_DOMAIN | (negotiate.flags & ECHOED_FLAGS))
    if negotiate.flags & REQUEST_TARGET:
        flags |= REQUEST_TARGET
    pairs = [(AV_NB_DOMAIN_NAME, names.netbios_domain.encode("utf-16-le")),
             (AV_NB_COMPUTER_NAME, names.netbios_computer.encode("utf-16-le"))]
    if names.dns_domain:
        pairs.append((AV_DNS_DOMAIN_NAME, names.dns_domain.encode("utf-16-le")))
    if names.dns_computer:
        pairs.append((AV_DNS_COMPUTER_NAME, names.dns_computer.encode("utf-16-le")))
    pairs.append((AV_TIMESTAMP, struct.pack("<Q", filetime)))
    target_info = av_pairs(pairs)
    target_name = names.netbios_domain.encode("utf-16-le")
    header_len = 56  # with the Version field
    name_off = header_len
    info_off = name_off + len(target_name)
    header = (SIGNATURE + struct.pack("<I", CHALLENGE)
              + struct.pack("<HHI", len(target_name), len(target_name), name_off)
              + struct.pack("<I", flags) + server_challenge + b"\x00" * 8
              + struct.pack("<HHI", len(target_info), len(target_info), info_off)
              + _SERVER_VERSION)
    return header + target_name + target_info


@dataclass(frozen=True)
class AuthenticateMessage:
    """AUTHENTICATE_MESSAGE (§2.2.1.3), fields decoded but nothing verified."""

    flags: int
    user: str
    domain: str
    workstation: str
    lm_response: bytes = field(repr=False)
    nt_response: bytes = field(repr=False)
    encrypted_session_key: bytes = field(repr=False)
    raw: bytes = field(repr=False)

    @property
    def anonymous(self) -> bool:
        """The anonymous form of §3.2.5.1.2: no user and no NT response."""
        return not self.user and not self.nt_response \
            and self.lm_response in (b"", b"\x00")

    @property
    def is_ntlmv1(self) -> bool:
        """A 24-octet NT response is NTLMv1 (or NTLM2 session response): refused."""
        return len(self.nt_response) == 24


def parse_authenticate(data: bytes) -> AuthenticateMessage:
    _check_header(data, AUTHENTICATE, 64)
    lm = _field(data, 12, "LmChallengeResponse")
    nt = _field(data, 20, "NtChallengeResponse")
    (flags,) = struct.unpack_from("<I", data, 60)
    unicode = bool(flags & NEGOTIATE_UNICODE)
    domain = _text(_field(data, 28, "DomainName"), unicode, "domain name")
    user = _text(_field(data, 36, "UserName"), unicode, "user name")
    workstation = _text(_field(data, 44, "Workstation"), unicode, "workstation")
    session_key = _field(data, 52, "EncryptedRandomSessionKey")
    if len(session_key) not in (0, 16):
        raise MechanismError("NTLM session key must be 16 octets")
    return AuthenticateMessage(flags=flags, user=user, domain=domain,
                               workstation=workstation, lm_response=lm, nt_response=nt,
                               encrypted_session_key=session_key, raw=bytes(data))
