"""Certificate authority helpers for tests (see ``tests.pki``).

Invariants: ECDSA P-256 keys (fast to generate on a small machine); every file is PEM;
a client certificate carries EKU clientAuth unless told otherwise; the UPN travels as a
SAN otherName of type 1.3.6.1.4.1.311.20.2.3 holding a DER UTF8String (MS-WCCE, as
Active Directory Certificate Services issues it).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

UPN_OID = ObjectIdentifier("1.3.6.1.4.1.311.20.2.3")
_NOW_SKEW = dt.timedelta(minutes=5)


def der_utf8string(text: str) -> bytes:
    """DER encoding of an ASN.1 UTF8String (tag 12) - the UPN otherName value."""
    raw = text.encode("utf-8")
    if len(raw) < 128:
        return bytes([0x0C, len(raw)]) + raw
    length = len(raw).to_bytes((len(raw).bit_length() + 7) // 8, "big")
    return bytes([0x0C, 0x80 | len(length)]) + length + raw


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


@dataclass
class Issued:
    """A certificate with its key, written to ``cert_file`` / ``key_file``."""

    name: str
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    cert_file: Path
    key_file: Path

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def client_context(self, trust_file: Path) -> ssl.SSLContext:
        """A client SSLContext presenting this certificate, trusting ``trust_file``."""
        ctx = ssl.create_default_context(cafile=str(trust_file))
        ctx.load_cert_chain(self.cert_file, self.key_file)
        return ctx


@dataclass
class TestCa(Issued):
    """A CA: issues certificates and CRLs."""

    __test__ = False  # not a pytest test class

    @property
    def subject(self) -> x509.Name:
        return self.cert.subject


class TestPki:
    """A directory of test PKI material: CAs, a server certificate, client certificates."""

    __test__ = False

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self._server: Issued | None = None
        self._server_ca: TestCa | None = None

    def _write(self, name: str, cert: x509.Certificate,
               key: ec.EllipticCurvePrivateKey) -> tuple[Path, Path]:
        cert_file = self.dir / f"{name}.crt"
        key_file = self.dir / f"{name}.key"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(_pem_key(key))
        key_file.chmod(0o600)
        return cert_file, key_file

    def ca(self, common_name: str, *, file_name: str | None = None) -> TestCa:
        """A self-signed root CA."""
        key = _key()
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _NOW_SKEW)
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256())
        )
        stem = file_name or common_name.lower().replace(" ", "-")
        cert_file, key_file = self._write(stem, cert, key)
        return TestCa(common_name, cert, key, cert_file, key_file)

    def issue(self, ca: TestCa, subject: x509.Name, *, file_name: str,
              sans: Iterable[x509.GeneralName] = (),
              eku: Iterable[ObjectIdentifier] | None = (ExtendedKeyUsageOID.CLIENT_AUTH,),
              not_before: dt.datetime | None = None,
              not_after: dt.datetime | None = None) -> Issued:
        """Any end-entity certificate signed by ``ca`` (``eku=None``: no EKU extension)."""
        key = _key()
        now = dt.datetime.now(dt.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject).issuer_name(ca.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or now - _NOW_SKEW)
            .not_valid_after(not_after or now + dt.timedelta(days=7))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca.key.public_key()), critical=False)
        )
        san_list = list(sans)
        if san_list:
            builder = builder.add_extension(x509.SubjectAlternativeName(san_list),
                                            critical=False)
        if eku is not None:
            builder = builder.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
        cert = builder.sign(ca.key, hashes.SHA256())
        cert_file, key_file = self._write(file_name, cert, key)
        return Issued(file_name, cert, key, cert_file, key_file)

    def client(self, ca: TestCa, common_name: str, *, email: str | None = None,
               upn: str | None = None, subject_email: str | None = None,
               eku: Iterable[ObjectIdentifier] | None = (ExtendedKeyUsageOID.CLIENT_AUTH,),
               expired: bool = False, file_name: str | None = None) -> Issued:
        """A client certificate: CN, optional rfc822Name SAN, UPN otherName SAN, and an
        emailAddress attribute in the subject."""
        attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
        if subject_email:
            attrs.append(x509.NameAttribute(NameOID.EMAIL_ADDRESS, subject_email))
        sans: list[x509.GeneralName] = []
        if email:
            sans.append(x509.RFC822Name(email))
        if upn:
            sans.append(x509.OtherName(UPN_OID, der_utf8string(upn)))
        now = dt.datetime.now(dt.UTC)
        window = {}
        if expired:
            window = {"not_before": now - dt.timedelta(days=10),
                      "not_after": now - dt.timedelta(days=1)}
        return self.issue(ca, x509.Name(attrs), file_name=file_name or f"client-{common_name}",
                          sans=sans, eku=eku, **window)

    def server(self, ca: TestCa, *, name: str = "localhost") -> Issued:
        """A server certificate for localhost / 127.0.0.1 / ::1."""
        sans: list[x509.GeneralName] = [
            x509.DNSName(name), x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address("::1"))]
        return self.issue(ca, x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]),
                          file_name="server", sans=sans,
                          eku=(ExtendedKeyUsageOID.SERVER_AUTH,))

    def write_crl(self, ca: TestCa, *, revoked: Iterable[Issued] = (),
                  file_name: str | None = None) -> Path:
        """A CRL of ``ca`` revoking ``revoked``, valid from now for a day (PEM)."""
        now = dt.datetime.now(dt.UTC)
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(ca.cert.subject)
            .last_update(now - _NOW_SKEW)
            .next_update(now + dt.timedelta(days=1))
        )
        for item in revoked:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(item.cert.serial_number)
                .revocation_date(now - _NOW_SKEW)
                .build())
        crl = builder.sign(ca.key, hashes.SHA256())
        path = self.dir / (file_name or f"{ca.cert_file.stem}.crl.pem")
        path.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
        return path

    @staticmethod
    def bundle(path: Path, *cas: TestCa) -> Path:
        """Concatenate CA certificates into one PEM file (a CA bundle)."""
        path.write_bytes(b"".join(ca.pem for ca in cas))
        return path
