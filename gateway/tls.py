"""TLS material for the node's listeners.

Role: make sure a certificate and key exist (generating a self-signed pair for the
quick start when allowed) and build the server ``ssl.SSLContext`` every TLS listener
shares, and a second context that requests (or requires) client certificates from the
configured CAs (``tls.client_ca_file``), with leaf revocation checked against
``tls.client_crl_file`` (docs/client-certificates.md).

Invariants: private keys are written with mode 0600 and atomically (a crash never
leaves a half-written key); TLS 1.2 is the floor (security.md A8). The client-auth
context trusts exactly the configured CAs, never the system store; with a CRL file,
OpenSSL's ``X509_V_FLAG_CRL_CHECK`` applies to the leaf, so a CA without a current CRL
in the file fails closed. The plain context never asks for a client certificate (an
MTA presenting its own certificate on port 25 must not fail the handshake).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import os
import ssl
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gateway.config import SCHEMA, Settings, TlsSettings
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


# --- client certificates ------------------------------------------------------------

#: How often (seconds) a handshake may look at the CRL file's modification time.
CRL_CHECK_INTERVAL = 30.0


@dataclass(frozen=True)
class ClientCertSettings:
    """The node's client-certificate settings (``tls.client_*`` keys)."""

    ca_file: Path
    crl_file: Path | None
    require: bool

    @classmethod
    def from_settings(cls, settings: Settings) -> ClientCertSettings | None:
        """The settings, or None when ``tls.client_ca_file`` is empty (feature off).

        Raises ConfigError for a CRL file without a CA file."""
        defaults = {k.path: k.default for k in SCHEMA}

        def get(key: str) -> object:
            return settings.raw.get(key, defaults[key])

        ca, crl = str(get("tls.client_ca_file")), str(get("tls.client_crl_file"))
        if not ca:
            if crl:
                raise ConfigError(["tls.client_crl_file: set tls.client_ca_file too (a CRL "
                                   "is only checked for client certificates)"])
            return None
        return cls(ca_file=Path(ca), crl_file=Path(crl) if crl else None,
                   require=get("tls.client_certificates") == "require")


class _CrlReloader:
    """Re-reads the CRL file into the context when its modification time moves.

    Called from the context's server-name callback, i.e. once per handshake in the
    event loop; it stats the file at most every ``CRL_CHECK_INTERVAL`` seconds. OpenSSL
    keeps every CRL loaded and uses the newest of one issuer (``get_crl_sk``), so
    loading the new file is enough; a file that fails to parse keeps the old CRLs and
    is logged.
    """

    def __init__(self, ctx: ssl.SSLContext, path: Path) -> None:
        self._ctx = ctx
        self._path = path
        self._mtime = path.stat().st_mtime_ns
        self._checked = time.monotonic()

    def __call__(self, _sslobj: ssl.SSLObject, _name: str | None,
                 _ctx: ssl.SSLContext) -> None:
        now = time.monotonic()
        if now - self._checked < CRL_CHECK_INTERVAL:
            return
        self._checked = now
        self.reload_if_changed()

    def reload_if_changed(self) -> bool:
        try:
            mtime = self._path.stat().st_mtime_ns
        except OSError as exc:
            log.error("cannot stat the client CRL file %s: %s (keeping the loaded CRLs)",
                      self._path, exc.strerror)
            return False
        if mtime == self._mtime:
            return False
        try:
            self._ctx.load_verify_locations(cafile=str(self._path))
        except (OSError, ssl.SSLError) as exc:
            log.error("cannot load the client CRL file %s: %s (keeping the loaded CRLs)",
                      self._path, exc)
            return False
        self._mtime = mtime
        log.info("reloaded client certificate revocation list %s", self._path)
        return True


def client_auth_context(tls: TlsSettings, client: ClientCertSettings) -> ssl.SSLContext:
    """A server context like ``server_context`` that asks for a client certificate.

    ``CERT_OPTIONAL`` (request) or ``CERT_REQUIRED`` (require): a certificate that is
    sent must chain to one of ``client.ca_file``'s CAs, be within its validity period
    and, with a CRL file, not be revoked; otherwise the handshake fails. The verified
    leaf is available as ``ssl_object.getpeercert(binary_form=True)``.
    """
    # Not ssl.create_default_context(): for Purpose.CLIENT_AUTH it would trust the
    # system's CAs, i.e. any public CA could vouch for a login (security.md A8).
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(tls.certificate, tls.private_key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError([f"tls: cannot load {tls.certificate} / {tls.private_key}: "
                           f"{exc}"]) from None
    try:
        ctx.load_verify_locations(cafile=str(client.ca_file))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError([f"tls.client_ca_file: cannot load {client.ca_file}: "
                           f"{exc}"]) from None
    if not ctx.get_ca_certs():
        raise ConfigError([f"tls.client_ca_file: {client.ca_file} holds no CA certificate"])
    if client.crl_file is not None:
        try:
            ctx.load_verify_locations(cafile=str(client.crl_file))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError([f"tls.client_crl_file: cannot load {client.crl_file}: "
                               f"{exc}"]) from None
        # RFC 5280 §6.3: the leaf's serial must not be on its issuer's CRL. Leaf only:
        # intermediate CAs are the operator's own and rarely have CRLs distributed.
        ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
        ctx.sni_callback = _CrlReloader(ctx, client.crl_file)
    ctx.verify_mode = ssl.CERT_REQUIRED if client.require else ssl.CERT_OPTIONAL
    return ctx


def node_client_auth_context(settings: Settings) -> ssl.SSLContext | None:
    """The node's client-auth context, or None when client certificates are off."""
    client = ClientCertSettings.from_settings(settings)
    if client is None:
        return None
    ctx = client_auth_context(settings.tls, client)
    log.info("client certificates %s from %s%s", "required" if client.require else
             "requested", client.ca_file,
             f" (CRL {client.crl_file})" if client.crl_file else "")
    return ctx
