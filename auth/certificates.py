"""Client certificates: from a TLS-verified X.509 certificate to a mailbox.

Role: the certificate checker of the auth layer (docs/client-certificates.md). The TLS
layer (``gateway.tls.client_auth_context``) has already verified the chain against the
configured CAs, the validity period and, when configured, the CRL. This module reads
the identities the certificate carries, refuses certificates not meant for client
authentication, and maps it to exactly one mailbox:

1. explicit mappings set by cmdlet (``store.org`` certificate mappings, Exchange's
   altSecurityIdentities): ``thumbprint`` (SHA-1 of the DER, as Exchange shows it),
   ``subject`` (RFC 4514 string), ``rfc822`` and ``upn`` (a SAN value mapped to a
   mailbox that does not carry that address);
2. otherwise, implicitly: a SAN UPN otherName (OID 1.3.6.1.4.1.311.20.2.3, as Active
   Directory Certificate Services issues it) that is a mailbox's UPN or address, a SAN
   rfc822Name (RFC 5280 §4.2.1.6), or an emailAddress attribute of the subject
   (PKCS #9, legacy) that is a mailbox's SMTP address.

``AuthService`` turns a ``CertificateCredential`` into a Principal through
``CertificateMapper.map`` with the same lockout check, per-protocol policy, authzid
rule and audit trail as a password. ``CertificateAuthenticator`` is the entry point
for HTTP front ends (ActiveSync, web mail).

Invariants:
- EKU must list id-kp-clientAuth (RFC 5280 §4.2.1.12; a certificate without the
  extension is refused too: the gateway only accepts certificates issued for client
  login); a KeyUsage extension, if present, must allow digitalSignature;
- the validity period is checked again here (defence in depth);
- when the identities name more than one mailbox the certificate is refused
  (ambiguous), never resolved by order; explicit mappings win over implicit ones;
- a certificate is a public document: refusal reasons may name its subject, but the
  client only ever sees the generic failure.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from auth.credentials import Credential
from auth.errors import MechanismError
from gateway.errors import ValidationError

if TYPE_CHECKING:
    from auth.principal import Principal
    from auth.service import AuthService

log = logging.getLogger("auth.certificates")

#: UPN otherName (MS-WCCE; [MS-ADTS] userPrincipalName in certificates).
UPN_OID = ObjectIdentifier("1.3.6.1.4.1.311.20.2.3")
#: Largest certificate accepted (octets of DER); real client certificates are < 4 KiB.
MAX_CERTIFICATE_OCTETS = 16_384
#: Identities of one kind looked at per certificate (SAN lists are attacker-sized).
MAX_IDENTITIES = 16
#: Longest identity value considered (characters).
MAX_IDENTITY_LENGTH = 320
#: Most mapped-certificate outcomes remembered by ``CertificateAuthenticator``.
DEFAULT_CACHE_ENTRIES = 10_000


class CertificateError(MechanismError):
    """The certificate cannot be parsed (never raised for a merely unmapped one)."""


@dataclass(frozen=True)
class CertificateIdentity:
    """What a client certificate says about its holder (all values as printed)."""

    subject: str                      # RFC 4514, e.g. "CN=alice,O=Example"
    issuer: str
    serial: int
    thumbprint: str                   # SHA-1 of the DER, lower-case hex (Exchange)
    sha256: str                       # SHA-256 of the DER, lower-case hex
    not_before: dt.datetime
    not_after: dt.datetime
    rfc822_names: tuple[str, ...]     # SAN rfc822Name
    upns: tuple[str, ...]             # SAN otherName UPN
    subject_emails: tuple[str, ...]   # subject emailAddress attributes
    client_auth: bool                 # EKU lists id-kp-clientAuth
    signature_allowed: bool           # no KeyUsage, or digitalSignature set


def _der_string(value: bytes) -> str:
    """A DER UTF8String (tag 12) - the UPN otherName value. Strict: one TLV, definite
    short or long length, no trailing octets, valid UTF-8."""
    if len(value) < 2 or value[0] != 0x0C:
        raise ValueError("UPN otherName is not a UTF8String")
    length, offset = value[1], 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 2 or len(value) < 2 + count:
            raise ValueError("bad DER length")
        length = int.from_bytes(value[2:2 + count], "big")
        offset = 2 + count
    if offset + length != len(value):
        raise ValueError("bad DER length")
    return value[offset:].decode("utf-8")


def _clean(values: list[str]) -> tuple[str, ...]:
    """Identity values worth a lookup: bounded count and length, no control chars."""
    out: list[str] = []
    for raw in values[:MAX_IDENTITIES]:
        text = raw.strip()
        if (text and len(text) <= MAX_IDENTITY_LENGTH
                and not any(ord(c) < 0x20 or ord(c) == 0x7F for c in text)):
            out.append(text)
    return tuple(dict.fromkeys(out))


def parse_certificate(der: bytes) -> CertificateIdentity:
    """Read the identities of a DER certificate; ``CertificateError`` if unreadable."""
    if not der:
        raise CertificateError("no client certificate on the connection")
    if not isinstance(der, bytes) or len(der) > MAX_CERTIFICATE_OCTETS:
        raise CertificateError("client certificate too large")
    try:
        cert = x509.load_der_x509_certificate(der)
        subject = cert.subject.rfc4514_string()
        issuer = cert.issuer.rfc4514_string()
        emails: list[str] = []
        upns: list[str] = []
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            san = None
        if san is not None:
            emails = [str(v) for v in san.get_values_for_type(x509.RFC822Name)]
            for other in san.get_values_for_type(x509.OtherName):
                if other.type_id == UPN_OID:
                    try:
                        upns.append(_der_string(other.value))
                    except (ValueError, UnicodeDecodeError):
                        log.info("ignoring a malformed UPN otherName in %s", subject)
        subject_emails = [str(a.value) for a in
                          cert.subject.get_attributes_for_oid(NameOID.EMAIL_ADDRESS)]
        try:
            eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
            client_auth = ExtendedKeyUsageOID.CLIENT_AUTH in eku
        except x509.ExtensionNotFound:
            client_auth = False
        try:
            ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
            signature_allowed = ku.digital_signature or ku.key_agreement
        except x509.ExtensionNotFound:
            signature_allowed = True
        not_before, not_after = cert.not_valid_before_utc, cert.not_valid_after_utc
        serial = cert.serial_number
    except ValueError as exc:  # cryptography's parse errors (also bad extensions)
        raise CertificateError(f"unreadable client certificate: {exc}") from None
    return CertificateIdentity(
        subject=subject, issuer=issuer, serial=serial,
        thumbprint=hashlib.sha1(der, usedforsecurity=False).hexdigest(),
        sha256=hashlib.sha256(der).hexdigest(),
        not_before=not_before, not_after=not_after,
        rfc822_names=_clean(emails), upns=_clean(upns),
        subject_emails=_clean(subject_emails),
        client_auth=client_auth, signature_allowed=signature_allowed)


def usability_problem(ident: CertificateIdentity, now: float) -> str | None:
    """Why the certificate may not be used for a client login, or None."""
    if not ident.client_auth:
        return "certificate lacks the clientAuth extended key usage"
    if not ident.signature_allowed:
        return "certificate key usage does not allow digitalSignature"
    moment = dt.datetime.fromtimestamp(now, dt.UTC)
    if moment < ident.not_before:
        return "certificate not yet valid"
    if moment > ident.not_after:
        return "certificate expired"
    return None


@dataclass(frozen=True)
class CertificateCredential(Credential):
    """A client certificate verified by the TLS handshake (DER), with the SASL
    authorisation identity the client asked for (EXTERNAL, RFC 4422 appendix A)."""

    certificate: bytes = field(repr=False)
    authzid: str | None = None

    def __str__(self) -> str:
        return f"CertificateCredential({len(self.certificate)} octets)"


class MappedMailbox(Protocol):
    """The mailbox fields the mapper needs (``gateway.store.models.Mailbox``)."""

    id: int
    user_principal_name: str


class CertificateMappingSource(Protocol):
    """The part of ``store.org`` (docs/dev/interfaces.md) the mapper reads."""

    async def find_mailbox_by_certificate(self, kind: str, value: str) -> Any: ...
    async def find_mailbox_for_login(self, *, address: str | None = None,
                                     account: str | None = None) -> Any: ...
    async def find_mailbox_by_address(self, address: str) -> Any: ...


Lookup = Callable[[], Awaitable[Any]]


@dataclass(frozen=True)
class CertificateMatch:
    """The outcome of mapping: ``login`` (the mailbox's UPN) or a refusal ``reason``."""

    subject: str
    login: str | None = None
    mailbox_id: int | None = None
    how: str = ""
    reason: str = ""


class CertificateMapper:
    """Maps a verified client certificate to one mailbox (module docstring)."""

    def __init__(self, org: CertificateMappingSource, *, implicit: bool = True,
                 clock: Callable[[], float] = time.time) -> None:
        self._org = org
        self.implicit = implicit
        self._clock = clock

    async def map(self, der: bytes) -> CertificateMatch:
        try:
            ident = parse_certificate(der)
        except CertificateError as exc:
            return CertificateMatch(subject="?", reason=str(exc))
        problem = usability_problem(ident, self._clock())
        if problem is not None:
            return CertificateMatch(subject=ident.subject, reason=problem)
        explicit: list[tuple[str, str]] = [("thumbprint", ident.thumbprint),
                                           ("subject", ident.subject)]
        explicit += [("rfc822", v) for v in ident.rfc822_names]
        explicit += [("upn", v) for v in ident.upns]
        org = self._org
        found = await self._collect([
            (f"explicit {kind}", functools.partial(org.find_mailbox_by_certificate, kind,
                                                   value))
            for kind, value in explicit])
        if found is None and self.implicit:
            lookups: list[tuple[str, Lookup]] = [
                (f"upn {v}", functools.partial(org.find_mailbox_for_login, address=v))
                for v in ident.upns if "@" in v]
            lookups += [(f"rfc822 {v}", functools.partial(org.find_mailbox_by_address, v))
                        for v in ident.rfc822_names + ident.subject_emails if "@" in v]
            found = await self._collect(lookups)
        if found is None:
            return CertificateMatch(subject=ident.subject,
                                    reason="certificate maps to no mailbox")
        if isinstance(found, str):
            return CertificateMatch(subject=ident.subject, reason=found)
        how, mailbox = found
        return CertificateMatch(subject=ident.subject, login=mailbox.user_principal_name,
                                mailbox_id=int(mailbox.id), how=how)

    @staticmethod
    async def _collect(lookups: list[tuple[str, Lookup]]
                       ) -> tuple[str, MappedMailbox] | str | None:
        """Run the lookups (one after the other: the store serialises anyway); the one
        mailbox they agree on, a refusal reason when they disagree, None when none hit.
        A value the store refuses as malformed is just not a match."""
        hits: dict[int, tuple[str, MappedMailbox]] = {}
        for how, lookup in lookups:
            try:
                mailbox = await lookup()
            except ValidationError:
                continue
            if mailbox is not None:
                hits.setdefault(int(mailbox.id), (how, mailbox))
        if len(hits) > 1:
            return (f"certificate identities map to {len(hits)} different mailboxes "
                    f"({', '.join(h for h, _ in hits.values())})")
        return next(iter(hits.values()), None)


class CertificateAuthenticator:
    """Client-certificate login for request-per-authentication front ends (HTTP).

    ``authenticate`` hands a ``CertificateCredential`` to the ``AuthService`` (mapping,
    lockout check, policy, audit). A successful outcome is remembered for
    ``cache_ttl`` seconds per (certificate, protocol), so an ActiveSync device sending
    a request a second does not write an audit row and a throttle update each time;
    like password cache hits, such hits are logged at debug level only. Refusals are
    never cached. ``cache_ttl=0`` turns the cache off.
    """

    def __init__(self, auth: AuthService, *, cache_ttl: float = 60.0,
                 max_entries: int = DEFAULT_CACHE_ENTRIES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._auth = auth
        self._ttl = cache_ttl
        self._max = max_entries
        self._clock = clock
        self._cache: OrderedDict[tuple[bytes, str, str], tuple[float, Principal]] = \
            OrderedDict()

    async def authenticate(self, certificate: bytes, *, protocol: str, source_ip: str,
                           mechanism: str = "ClientCertificate",
                           authzid: str | None = None) -> Principal:
        """The Principal the certificate maps to; ``AuthenticationFailed`` otherwise."""
        key = (hashlib.sha256(certificate).digest(), protocol, authzid or "")
        now = self._clock()
        hit = self._cache.get(key)
        if hit is not None and hit[0] > now:
            self._cache.move_to_end(key)
            log.debug("auth outcome=success cached=1 protocol=%s mechanism=%s mailbox=%s "
                      "source=%s", protocol, mechanism, hit[1].mailbox_id, source_ip)
            return hit[1]
        principal = await self._auth.authenticate(
            CertificateCredential(certificate=certificate, authzid=authzid),
            protocol=protocol, mechanism=mechanism, source_ip=source_ip)
        if self._ttl > 0:
            self._cache[key] = (now + self._ttl, principal)
            self._cache.move_to_end(key)
            while len(self._cache) > self._max:
                self._cache.popitem(last=False)
        return principal
