"""Node settings: the TOML file of one gateway node.

Role: turn a TOML document (or nothing: the embedded defaults) into an immutable
``Settings`` object, validated at start. Every problem is reported at once with its
key and what was expected; unknown keys are refused. Organisation configuration
(domains, mailboxes, connectors) is *not* here: it lives in the store and is shared by
every node (see docs/architecture.md, "Two kinds of configuration").

Invariants: the schema below is the single description of every key; the docs table
in docs/configuration.md is checked against it by a test.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from auth.directories.ldap import LdapSettings
from gateway.errors import ConfigError

ENV_CONFIG = "GATEWAY_CONFIG"

# Quick-start listeners: unprivileged ports on loopback, so `make run` works as any
# user without exposing anything. deploy/gateway.toml shows the standard ports.
DEFAULT_BINDINGS: dict[str, list[str]] = {
    "smtp": ["127.0.0.1:2525"],
    "submission": ["127.0.0.1:2587"],
    "submissions": ["127.0.0.1:2465"],
    "imap": ["127.0.0.1:2143"],
    "imaps": ["127.0.0.1:2993"],
    "pop3": ["127.0.0.1:2110"],
    "pop3s": ["127.0.0.1:2995"],
    "https": ["127.0.0.1:8443"],
}

LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")


@dataclass(frozen=True)
class Endpoint:
    """A local address to listen on. ``host`` "0.0.0.0" / "::" mean every address."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_endpoint(text: str) -> Endpoint:
    """Parse ``IPv4:port``, ``[IPv6]:port`` or ``*:port`` (every IPv4 address).

    Raises ValueError with a message fit for an operator.
    """
    text = text.strip()
    if text.startswith("["):
        host, sep, port_text = text[1:].partition("]:")
        if not sep:
            raise ValueError(f"{text!r} is not [IPv6]:port")
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or ":" in host:
            raise ValueError(f"{text!r} is not IPv4:port or [IPv6]:port")
    if host == "*":
        host = "0.0.0.0"  # noqa: S104 - an explicit operator request for every address
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{host!r} in {text!r} is not an IP address") from None
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"port {port_text!r} in {text!r} is not a number from 1 to 65535")
    return Endpoint(host, int(port_text))


@dataclass(frozen=True)
class TlsSettings:
    certificate: Path
    private_key: Path
    generate_self_signed: bool


@dataclass(frozen=True)
class LoggingSettings:
    level: str
    format: str
    file: Path | None


@dataclass(frozen=True)
class Settings:
    """Validated node settings. Build with ``load_settings``."""

    server_name: str
    data_dir: Path
    store_url: str
    bootstrap_domain: str
    tls: TlsSettings
    bindings: Mapping[str, tuple[Endpoint, ...]]
    health_bind: tuple[Endpoint, ...]
    trusted_proxies: tuple[str, ...]
    shutdown_grace_seconds: float
    org_poll_seconds: float
    logging: LoggingSettings
    ldap: LdapSettings | None = None
    source: str = "embedded defaults"
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)


# --- the schema -------------------------------------------------------------------

@dataclass(frozen=True)
class Key:
    """One key of the TOML file: its type, default and meaning (for docs and errors)."""

    path: str
    expected: str
    default: Any
    help: str
    check: Callable[[Any], str | None] = lambda _v: None


def _is_str(v: Any) -> str | None:
    return None if isinstance(v, str) else "a string"


def _non_empty_str(v: Any) -> str | None:
    return None if isinstance(v, str) and v.strip() else "a non-empty string"


def _is_number(lo: float, hi: float) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        ok = isinstance(v, int | float) and not isinstance(v, bool) and lo <= v <= hi
        return None if ok else f"a number from {lo:g} to {hi:g}"

    return check


def _one_of(*choices: str) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        return None if v in choices else "one of " + ", ".join(repr(c) for c in choices)

    return check


def _bool(v: Any) -> str | None:
    return None if isinstance(v, bool) else "true or false"


def _str_list(v: Any) -> str | None:
    ok = isinstance(v, list) and all(isinstance(e, str) and e for e in v)
    return None if ok else "a list of non-empty strings"


def _endpoints(v: Any) -> str | None:
    if not isinstance(v, list) or not all(isinstance(e, str) for e in v):
        return 'a list of "IPv4:port" / "[IPv6]:port" strings'
    for e in v:
        try:
            parse_endpoint(e)
        except ValueError as exc:
            return f'a list of "IPv4:port" / "[IPv6]:port" strings ({exc})'
    return None


def _networks(v: Any) -> str | None:
    if not isinstance(v, list) or not all(isinstance(e, str) for e in v):
        return "a list of IP addresses or CIDR networks"
    for e in v:
        try:
            ipaddress.ip_network(e, strict=False)
        except ValueError:
            return f"a list of IP addresses or CIDR networks ({e!r} is neither)"
    return None


def _store_url(v: Any) -> str | None:
    if not isinstance(v, str):
        return "a string"
    if v == "" or v.startswith(("sqlite:///", "postgresql://", "postgres://")):
        return None
    return '"sqlite:///path", "postgresql://user@host:port/db" or "" for the default'


def _domain(v: Any) -> str | None:
    if not isinstance(v, str):
        return "a domain name"
    if v == "":
        return None
    labels = v.split(".")
    ok = len(v) <= 253 and all(
        0 < len(label) <= 63
        and label[0] != "-"
        and label[-1] != "-"
        and all(c.isalnum() or c == "-" for c in label)
        for label in labels
    )
    return None if ok else "a domain name such as example.test"


SCHEMA: tuple[Key, ...] = (
    Key("server_name", "a host name", "",
        "Fully qualified name of this node: SMTP banner and EHLO, certificate subject. "
        "Default: the machine's FQDN.", _is_str),
    Key("data_dir", "a directory path", "./var",
        "Where the node keeps its SQLite store, generated certificate and logs. Relative "
        "paths are relative to the working directory.", _non_empty_str),
    Key("store_url", "a store URL", "",
        'Mail and organisation store. "" means SQLite at <data_dir>/gateway.db; '
        '"postgresql://user@host:5432/db" shares one store between nodes.', _store_url),
    Key("bootstrap_domain", "a domain name", "",
        "Accepted domain created on the first start of an empty store, with the mailbox "
        "admin@<domain>. Default: the parent domain of server_name, or "
        "<server_name>.localdomain when it has no dot.", _domain),
    Key("shutdown_grace_seconds", "a number of seconds", 10.0,
        "On SIGTERM, how long in-flight sessions may take to finish before they are "
        "cut off.", _is_number(0, 3600)),
    Key("org_poll_seconds", "a number of seconds", 1.0,
        "How often the node checks the store for organisation changes made by the admin "
        "shell or another node.", _is_number(0.05, 300)),
    Key("trusted_proxies", "a list of networks", [],
        "Peers allowed to send a PROXY protocol v1/v2 header naming the real client "
        "address. Everyone else's PROXY header is refused.", _networks),
    Key("tls.certificate", "a file path", "",
        'PEM certificate chain for every TLS listener. "" means <data_dir>/tls/cert.pem, '
        "generated self-signed on first start when missing.", _is_str),
    Key("tls.private_key", "a file path", "",
        'PEM private key. "" means <data_dir>/tls/key.pem.', _is_str),
    Key("tls.generate_self_signed", "true or false", True,
        "Generate a self-signed certificate for server_name when the files are missing. "
        "Set false in production so a missing certificate is an error.", _bool),
    Key("tls.client_ca_file", "a file path", "",
        "PEM file of the CAs whose client certificates are accepted (certificate login: "
        "SMTP/IMAP/POP3 EXTERNAL, ActiveSync and web mail). \"\" turns client "
        "certificates off. Never requested on the smtp (MX) listener.", _is_str),
    Key("tls.client_crl_file", "a file path", "",
        "PEM file of CRLs checked for client certificates (leaf only); it must hold a "
        "current CRL of every CA in tls.client_ca_file. Re-read when it changes. \"\" "
        "means no revocation check.", _is_str),
    Key("tls.client_certificates", "request or require", "request",
        '"request": ask for a client certificate and verify any that is sent; '
        '"require": refuse TLS handshakes without one. Applies where client '
        "certificates are used (HTTPS; line protocols that enable EXTERNAL).",
        _one_of("request", "require")),
    Key("http.health_bind", "a list of endpoints", ["127.0.0.1:8080"],
        "Plain-HTTP listener for /healthz (load balancers, monitoring). Keep it on a "
        "management network.", _endpoints),
    Key("ldap.uris", "a list of LDAP URIs", [],
        "Directory servers tried in order (failover), e.g. [\"ldap://dc1.example.com\", "
        "\"ldap://dc2.example.com\"]. Empty: no LDAP directory, local mailboxes only.",
        _str_list),
    Key("ldap.base_dn", "a distinguished name", "", "Where users are searched.", _is_str),
    Key("ldap.bind_dn", "a distinguished name", "",
        "Service account for searches; \"\" searches anonymously.", _is_str),
    Key("ldap.bind_password_file", "a file path", "",
        "File whose first line is the service account's password (keep it mode 0600).",
        _is_str),
    Key("ldap.tls", "starttls, ldaps or none", "starttls",
        "StartTLS on ldap:// URIs (RFC 4513 §3), ldaps:// URIs, or none (clear text: "
        "loopback or ldapi only). Certificates and host names are always checked.",
        _one_of("starttls", "ldaps", "none")),
    Key("ldap.ca_file", "a file path", "",
        "PEM bundle of the CAs that sign the directory servers' certificates; \"\" uses "
        "the system's.", _is_str),
    Key("ldap.user_filter", "an LDAP filter", "(objectClass=person)",
        "Which entries are users (combined with the login attribute match).", _is_str),
    Key("ldap.login_attributes", "a list of attribute names",
        ["mail", "userPrincipalName", "sAMAccountName", "proxyAddresses"],
        "Attributes a login name is matched against (RFC 4515 escaped).", _str_list),
    Key("ldap.mail_attribute", "an attribute name", "mail",
        "Attribute holding the primary SMTP address.", _is_str),
    Key("ldap.display_name_attribute", "an attribute name", "displayName",
        "Attribute holding the display name.", _is_str),
    Key("ldap.group_attribute", "an attribute name", "memberOf",
        "Attribute listing group DNs, mapped to DOMAIN\\group principals.", _is_str),
    Key("ldap.netbios_domain", "a NetBIOS domain name", "",
        "Domain accepted in DOMAIN\\user logins; \"\" uses the organisation's.", _is_str),
    Key("ldap.connect_timeout", "a number of seconds", 5.0,
        "Per-server connection timeout before failing over.", _is_number(0.1, 300)),
    Key("ldap.operation_timeout", "a number of seconds", 10.0,
        "Timeout of one search or bind.", _is_number(0.1, 300)),
    Key("ldap.pool_size", "a number of connections", 4,
        "Connections per pool (searches and binds each have one).", _is_number(1, 256)),
    Key("ldap.max_pending", "a number of requests", 256,
        "Directory requests allowed to wait for a connection before logins are refused "
        "as temporarily unavailable.", _is_number(1, 100000)),
    Key("ldap.retry_after", "a number of seconds", 30.0,
        "How long a failed server is skipped before it is tried again.",
        _is_number(1, 3600)),
    Key("logging.level", "a log level", "info", "debug, info, warning or error.",
        _one_of(*LOG_LEVELS)),
    Key("logging.format", "a log format", "text",
        '"text" for people, "json" for one JSON object per line.', _one_of(*LOG_FORMATS)),
    Key("logging.file", "a file path", "", 'Log file; "" logs to standard error.', _is_str),
    *(
        Key(f"bindings.{name}", "a list of endpoints", default,
            f"Local addresses of the {name} listeners on this node (a per-node override of "
            "the organisation's connector and protocol-settings bindings).", _endpoints)
        for name, default in DEFAULT_BINDINGS.items()
    ),
)

_KEYS = {k.path: k for k in SCHEMA}
_TABLES = {k.path.rpartition(".")[0] for k in SCHEMA if "." in k.path}


def _flatten(doc: Mapping[str, Any], prefix: str, out: dict[str, Any],
             problems: list[str]) -> None:
    for name, value in doc.items():
        path = f"{prefix}{name}"
        if isinstance(value, dict) and path in _TABLES:
            _flatten(value, path + ".", out, problems)
        elif path in _KEYS:
            out[path] = value
        else:
            problems.append(f"{path}: unknown key{_suggest(path)}")


def _suggest(path: str) -> str:
    import difflib

    near = difflib.get_close_matches(path, list(_KEYS), n=1, cutoff=0.6)
    return f" (did you mean {near[0]!r}?)" if near else ""


def default_server_name() -> str:
    """The machine's FQDN, falling back to its host name."""
    name = socket.getfqdn() or socket.gethostname() or "localhost"
    return name.lower().rstrip(".")


def derive_bootstrap_domain(server_name: str) -> str:
    """mail1.example.test -> example.test; a name without a dot -> <name>.localdomain."""
    labels = server_name.split(".")
    if len(labels) >= 3:
        return ".".join(labels[1:])
    if len(labels) == 2:
        return server_name
    return f"{server_name}.localdomain"


def load_settings(path: str | os.PathLike[str] | None = None,
                  env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate node settings.

    ``path`` wins over the GATEWAY_CONFIG environment variable; with neither, the
    embedded defaults apply. Raises ConfigError listing every problem found.
    """
    env = os.environ if env is None else env
    chosen = str(path) if path else env.get(ENV_CONFIG, "")
    doc: dict[str, Any] = {}
    source = "embedded defaults"
    if chosen:
        source = chosen
        try:
            with open(chosen, "rb") as fh:
                doc = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError([f"{chosen}: no such file"]) from None
        except OSError as exc:
            raise ConfigError([f"{chosen}: cannot read: {exc.strerror}"]) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError([f"{chosen}: not valid TOML: {exc}"]) from None
    return settings_from_mapping(doc, source=source)


def settings_from_mapping(doc: Mapping[str, Any], *, source: str = "<mapping>") -> Settings:
    """Validate an already parsed document (used by load_settings and tests)."""
    problems: list[str] = []
    values: dict[str, Any] = {}
    _flatten(doc, "", values, problems)
    for path, value in values.items():
        why = _KEYS[path].check(value)
        if why is not None:
            problems.append(f"{path}: expected {why}, got {value!r}")

    def get(path: str) -> Any:
        return values.get(path, _KEYS[path].default)

    ldap_settings = None
    if not problems and get("ldap.uris"):
        ldap_settings = _ldap_settings(get)
        problems += ldap_settings.errors()
    if problems:
        raise ConfigError([f"{source}: {p}" for p in problems])

    server_name = (get("server_name") or default_server_name()).lower().rstrip(".")
    data_dir = Path(get("data_dir"))
    store_url = get("store_url") or f"sqlite:///{data_dir / 'gateway.db'}"
    tls = TlsSettings(
        certificate=Path(get("tls.certificate") or data_dir / "tls" / "cert.pem"),
        private_key=Path(get("tls.private_key") or data_dir / "tls" / "key.pem"),
        generate_self_signed=get("tls.generate_self_signed"),
    )
    bindings = {
        name: tuple(parse_endpoint(e) for e in get(f"bindings.{name}"))
        for name in DEFAULT_BINDINGS
    }
    log_file = get("logging.file")
    return Settings(
        server_name=server_name,
        data_dir=data_dir,
        store_url=store_url,
        bootstrap_domain=get("bootstrap_domain") or derive_bootstrap_domain(server_name),
        tls=tls,
        bindings=bindings,
        health_bind=tuple(parse_endpoint(e) for e in get("http.health_bind")),
        trusted_proxies=tuple(get("trusted_proxies")),
        shutdown_grace_seconds=float(get("shutdown_grace_seconds")),
        org_poll_seconds=float(get("org_poll_seconds")),
        logging=LoggingSettings(
            level=get("logging.level"),
            format=get("logging.format"),
            file=Path(log_file) if log_file else None,
        ),
        ldap=ldap_settings,
        source=source,
        raw=dict(values),
    )


def _ldap_settings(get: Callable[[str], Any]) -> LdapSettings:
    """The [ldap] table as the directory's own settings object (auth/directories/ldap.py)."""
    return LdapSettings(
        uris=tuple(get("ldap.uris")),
        base_dn=get("ldap.base_dn"),
        bind_dn=get("ldap.bind_dn") or None,
        bind_password_file=get("ldap.bind_password_file") or None,
        tls=get("ldap.tls"),
        ca_file=get("ldap.ca_file") or None,
        user_filter=get("ldap.user_filter"),
        login_attributes=tuple(get("ldap.login_attributes")),
        mail_attribute=get("ldap.mail_attribute"),
        display_name_attribute=get("ldap.display_name_attribute"),
        group_attribute=get("ldap.group_attribute"),
        netbios_domain=get("ldap.netbios_domain") or None,
        connect_timeout=float(get("ldap.connect_timeout")),
        operation_timeout=float(get("ldap.operation_timeout")),
        pool_size=int(get("ldap.pool_size")),
        max_pending=int(get("ldap.max_pending")),
        retry_after=float(get("ldap.retry_after")),
    )
