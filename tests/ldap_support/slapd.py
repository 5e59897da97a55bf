"""A throw-away OpenLDAP ``slapd`` for the LDAP directory tests.

Role: generate a test CA and a server certificate (SAN IP 127.0.0.1 and localhost),
a ``slapd.conf`` with an MDB database under a temporary directory and a small schema
for the Active Directory attributes the gateway reads (userPrincipalName,
sAMAccountName, proxyAddresses, memberOf, userAccountControl, with Microsoft's OIDs);
start slapd in the foreground on free loopback ports (ldap:// with StartTLS and
ldaps://), load entries with ``ldapadd`` and stop it afterwards.

Needs the Debian packages ``slapd`` and ``ldap-utils``. ``SLAPD_MISSING`` says why
tests must skip when they are absent.
"""

from __future__ import annotations

import datetime
import ipaddress
import shutil
import socket
import subprocess
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

SLAPD = shutil.which("slapd") or ("/usr/sbin/slapd" if Path("/usr/sbin/slapd").exists()
                                  else None)
LDAPADD = shutil.which("ldapadd")
SCHEMA_DIR = Path("/etc/ldap/schema")
MODULE_DIR = Path("/usr/lib/ldap")
SLAPD_MISSING = (None if SLAPD and LDAPADD and (SCHEMA_DIR / "inetorgperson.schema").exists()
                 else "slapd / ldap-utils not installed (apt-get install slapd ldap-utils)")

BASE_DN = "dc=example,dc=test"
ROOT_DN = f"cn=admin,{BASE_DN}"
ROOT_PW = "root-secret"
SERVICE_DN = f"cn=svc,ou=services,{BASE_DN}"
SERVICE_PW = "svc-secret"

AD_SCHEMA = """\
attributetype ( 1.2.840.113556.1.4.656 NAME 'userPrincipalName'
  EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.221 NAME 'sAMAccountName'
  EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.2.210 NAME 'proxyAddresses'
  EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )
attributetype ( 1.2.840.113556.1.2.102 NAME 'memberOf'
  EQUALITY distinguishedNameMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.12 )
attributetype ( 1.2.840.113556.1.4.8 NAME 'userAccountControl'
  EQUALITY integerMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE )
objectclass ( 1.3.6.1.4.1.99999.1.1 NAME 'gatewayTestUser' SUP top AUXILIARY
  MAY ( userPrincipalName $ sAMAccountName $ proxyAddresses $ memberOf $
        userAccountControl ) )
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_ca_and_server(directory: Path, *, hosts: tuple[str, ...] = ("127.0.0.1",
                                                                       "localhost")
                       ) -> tuple[Path, Path, Path]:
    """(ca.pem, server.pem, server.key) signed by a fresh test CA."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Gateway Test LDAP CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                       False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = []
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    ca_path, cert_path, key_path = (directory / "ca.pem", directory / "server.pem",
                                    directory / "server.key")
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return ca_path, cert_path, key_path


def user_ldif(uid: str, *, mail: str | None, password: str, upn: str | None = None,
              sam: str | None = None, proxies: tuple[str, ...] = (),
              groups: tuple[str, ...] = (), display: str | None = None,
              uac: int | None = None) -> str:
    lines = [f"dn: uid={uid},ou=people,{BASE_DN}", "objectClass: inetOrgPerson",
             "objectClass: gatewayTestUser", f"uid: {uid}", f"cn: {display or uid}",
             f"sn: {uid}", f"userPassword: {password}"]
    if mail:
        lines.append(f"mail: {mail}")
    if display:
        lines.append(f"displayName: {display}")
    if upn:
        lines.append(f"userPrincipalName: {upn}")
    if sam:
        lines.append(f"sAMAccountName: {sam}")
    lines += [f"proxyAddresses: {p}" for p in proxies]
    lines += [f"memberOf: cn={g},ou=groups,{BASE_DN}" for g in groups]
    if uac is not None:
        lines.append(f"userAccountControl: {uac}")
    return "\n".join(lines) + "\n"


BASE_LDIF = f"""\
dn: {BASE_DN}
objectClass: dcObject
objectClass: organization
dc: example
o: Example

dn: ou=people,{BASE_DN}
objectClass: organizationalUnit
ou: people

dn: ou=services,{BASE_DN}
objectClass: organizationalUnit
ou: services

dn: ou=groups,{BASE_DN}
objectClass: organizationalUnit
ou: groups

dn: {SERVICE_DN}
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: svc
userPassword: {SERVICE_PW}
"""


class Slapd:
    """One slapd process with StartTLS on ``ldap_uri`` and LDAPS on ``ldaps_uri``."""

    def __init__(self, directory: Path, *,
                 cert_hosts: tuple[str, ...] = ("127.0.0.1", "localhost")) -> None:
        if SLAPD_MISSING:
            raise RuntimeError(SLAPD_MISSING)
        self.dir = directory
        self.ca, self.cert, self.key = make_ca_and_server(directory, hosts=cert_hosts)
        self.port = free_port()
        self.tls_port = free_port()
        self.ldap_uri = f"ldap://127.0.0.1:{self.port}"
        self.ldaps_uri = f"ldaps://127.0.0.1:{self.tls_port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.password_file = directory / "svc.pw"
        self.password_file.write_text(SERVICE_PW + "\n", encoding="utf-8")

    def _config(self) -> Path:
        data = self.dir / "data"
        data.mkdir(exist_ok=True)
        schema = self.dir / "ad.schema"
        schema.write_text(AD_SCHEMA, encoding="utf-8")
        conf = self.dir / "slapd.conf"
        conf.write_text(f"""\
include {SCHEMA_DIR}/core.schema
include {SCHEMA_DIR}/cosine.schema
include {SCHEMA_DIR}/inetorgperson.schema
include {schema}
# like Active Directory, accept unauthenticated binds (RFC 4513 §5.1.2): the gateway
# must never send one
allow bind_anon_dn
pidfile {self.dir}/slapd.pid
argsfile {self.dir}/slapd.args
modulepath {MODULE_DIR}
moduleload back_mdb
TLSCACertificateFile {self.ca}
TLSCertificateFile {self.cert}
TLSCertificateKeyFile {self.key}
database mdb
maxsize 67108864
suffix "{BASE_DN}"
rootdn "{ROOT_DN}"
rootpw {ROOT_PW}
directory {data}
index objectClass eq
access to attrs=userPassword
  by anonymous auth
  by * none
access to *
  by dn.exact="{SERVICE_DN}" read
  by * none
""", encoding="utf-8")
        return conf

    def start(self) -> None:
        assert SLAPD is not None
        conf = self._config()
        log = (self.dir / "slapd.log").open("wb")
        self.proc = subprocess.Popen(
            [SLAPD, "-f", str(conf), "-h", f"{self.ldap_uri}/ {self.ldaps_uri}/",
             "-d", "0"], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("slapd exited: " + self.log_text())
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2), \
                        socket.create_connection(("127.0.0.1", self.tls_port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.05)
        else:
            self.stop()
            raise RuntimeError("slapd did not start: " + self.log_text())
        self.add(BASE_LDIF)

    def add(self, ldif: str) -> None:
        """Load entries with ldapadd (simple bind as the root DN)."""
        assert LDAPADD is not None
        result = subprocess.run(
            [LDAPADD, "-x", "-H", self.ldap_uri, "-D", ROOT_DN, "-w", ROOT_PW],
            input=ldif.encode(), capture_output=True, timeout=30, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"ldapadd failed: {result.stderr.decode(errors='replace')}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def log_text(self) -> str:
        path = self.dir / "slapd.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""
