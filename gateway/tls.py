"""TLS material for the node's listeners.

Role: make sure a certificate and key exist (generating a self-signed pair for the
quick start when allowed) and build the server ``ssl.SSLContext`` every TLS listener
shares. Invariants: private keys are written with mode 0600 and atomically (a crash
never leaves a half-written key); TLS 1.2 is the floor (security.md A8).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import os
import ssl
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gateway.config import TlsSettings
from gateway.errors import ConfigError

log = logging.getLogger("gateway.tls")

SELF_SIGNED_VALIDITY = dt.timedelta(days=825)


def _write_atomically(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def generate_self_signed(server_name: str, cert_path: Path, key_path: Path) -> None:
    """Create an ECDSA P-256 self-signed certificate for ``server_name``.

    SANs: the server name, localhost, 127.0.0.1 and ::1, so the quick start can be
    reached by name or loopback address.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, server_name[:64])])
    now = dt.datetime.now(dt.UTC)
    sans: list[x509.GeneralName] = [x509.DNSName(server_name), x509.DNSName("localhost"),
                                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                    x509.IPAddress(ipaddress.ip_address("::1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + SELF_SIGNED_VALIDITY)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    _write_atomically(key_path, key_pem, 0o600)
    _write_atomically(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)


def ensure_certificate(settings: TlsSettings, server_name: str) -> None:
    """Check the certificate files exist, generating a self-signed pair if allowed."""
    have_cert, have_key = settings.certificate.exists(), settings.private_key.exists()
    if have_cert and have_key:
        return
    if not settings.generate_self_signed:
        missing = [str(p) for p, ok in ((settings.certificate, have_cert),
                                        (settings.private_key, have_key)) if not ok]
        raise ConfigError([f"tls: missing {m} (tls.generate_self_signed is false)"
                           for m in missing])
    if have_cert != have_key:
        raise ConfigError([f"tls: {settings.certificate} and {settings.private_key} must "
                           "both exist or both be missing"])
    log.info("generating a self-signed certificate for %s in %s", server_name,
             settings.certificate)
    generate_self_signed(server_name, settings.certificate, settings.private_key)


def server_context(settings: TlsSettings) -> ssl.SSLContext:
    """The server-side SSLContext shared by every TLS listener (TLS 1.2 or newer)."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(settings.certificate, settings.private_key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError([f"tls: cannot load {settings.certificate} / "
                           f"{settings.private_key}: {exc}"]) from None
    return ctx
