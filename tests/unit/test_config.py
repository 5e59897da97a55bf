"""Node settings: validation reports every problem at once, defaults are the quick start."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import (
    DEFAULT_BINDINGS,
    SCHEMA,
    Endpoint,
    derive_bootstrap_domain,
    load_settings,
    parse_endpoint,
    settings_from_mapping,
)
from gateway.config_docs import rewrite
from gateway.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_embedded_defaults_are_loopback_and_unprivileged() -> None:
    s = load_settings(None, env={})
    assert s.source == "embedded defaults"
    assert s.data_dir == Path("var")
    assert s.store_url == "sqlite:///var/gateway.db"
    assert s.tls.certificate == Path("var/tls/cert.pem")
    for name in DEFAULT_BINDINGS:
        for ep in s.bindings[name]:
            assert ep.host == "127.0.0.1" and ep.port >= 1024, (name, ep)


def test_config_from_environment_variable(tmp_path: Path) -> None:
    f = tmp_path / "g.toml"
    f.write_text('server_name = "Mail1.Example.Test."\ndata_dir = "/srv/gw"\n')
    s = load_settings(None, env={"GATEWAY_CONFIG": str(f)})
    assert s.server_name == "mail1.example.test"
    assert s.store_url == "sqlite:////srv/gw/gateway.db"
    assert s.bootstrap_domain == "example.test"


def test_every_problem_is_reported_at_once_with_its_key() -> None:
    with pytest.raises(ConfigError) as info:
        settings_from_mapping({
            "sever_name": "x",
            "logging": {"level": "loud", "fromat": "json"},
            "bindings": {"smtp": ["0.0.0.0:99999"], "imap": "127.0.0.1:143"},
            "store_url": "mysql://x",
            "shutdown_grace_seconds": -1,
            "trusted_proxies": ["10.0.0.0/33"],
        }, source="t.toml")
    problems = "\n".join(info.value.problems)
    assert "sever_name: unknown key (did you mean 'server_name'?)" in problems
    assert "logging.fromat: unknown key (did you mean 'logging.format'?)" in problems
    assert "logging.level: expected one of" in problems
    assert "bindings.smtp: expected" in problems and "99999" in problems
    assert "bindings.imap: expected a list" in problems
    assert "store_url: expected" in problems
    assert "shutdown_grace_seconds: expected a number from 0" in problems
    assert "trusted_proxies: expected" in problems
    assert len(info.value.problems) == 8
    assert all(p.startswith("t.toml: ") for p in info.value.problems)


def test_unknown_table_is_refused() -> None:
    with pytest.raises(ConfigError, match="imapd: unknown key"):
        settings_from_mapping({"imapd": {"port": 1}})


def test_missing_file_and_bad_toml_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_settings(tmp_path / "missing.toml", env={})
    bad = tmp_path / "bad.toml"
    bad.write_text("server_name = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(bad, env={})


@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.1:25", Endpoint("127.0.0.1", 25)),
    ("0.0.0.0:587", Endpoint("0.0.0.0", 587)),
    ("[::]:993", Endpoint("::", 993)),
    ("[::1]:143", Endpoint("::1", 143)),
    ("*:110", Endpoint("0.0.0.0", 110)),
])
def test_parse_endpoint(text: str, expected: Endpoint) -> None:
    assert parse_endpoint(text) == expected


@pytest.mark.parametrize("text", ["25", "host:25", "::1:25", "[::1]25", "1.2.3.4:0",
                                  "1.2.3.4:x", "[zz]:1"])
def test_parse_endpoint_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_endpoint(text)


def test_bootstrap_domain_derivation() -> None:
    assert derive_bootstrap_domain("mail1.example.test") == "example.test"
    assert derive_bootstrap_domain("example.test") == "example.test"
    assert derive_bootstrap_domain("box") == "box.localdomain"


def test_production_example_is_valid_and_uses_standard_ports() -> None:
    s = load_settings(ROOT / "deploy" / "gateway.toml", env={})
    ports = {name: {e.port for e in eps} for name, eps in s.bindings.items()}
    assert ports == {"smtp": {25}, "submission": {587}, "submissions": {465}, "imap": {143},
                     "imaps": {993}, "pop3": {110}, "pop3s": {995}, "https": {443}}
    hosts = {e.host for eps in s.bindings.values() for e in eps}
    assert hosts == {"0.0.0.0", "::"}


def test_configuration_reference_documents_every_key() -> None:
    doc = (ROOT / "docs" / "configuration.md").read_text()
    missing = [k.path for k in SCHEMA if f"`{k.path}`" not in doc]
    assert not missing, f"docs/configuration.md lacks {missing}"
    assert rewrite(doc) == doc, ("docs/configuration.md is stale: run "
                                 "python -m gateway.config_docs docs/configuration.md")


def test_ldap_table_builds_directory_settings_and_reports_its_problems() -> None:
    s = settings_from_mapping({"ldap": {"uris": ["ldap://127.0.0.1:3890"],
                                        "base_dn": "dc=example,dc=test",
                                        "bind_dn": "cn=svc,dc=example,dc=test",
                                        "bind_password_file": "/etc/gateway/ldap.pw"}})
    assert s.ldap is not None and s.ldap.uris == ("ldap://127.0.0.1:3890",)
    assert s.ldap.tls == "starttls" and s.ldap.pool_size == 4
    assert settings_from_mapping({}).ldap is None
    with pytest.raises(ConfigError) as info:
        settings_from_mapping({"ldap": {"uris": ["ldaps://dc1"], "base_dn": "nonsense",
                                        "bind_dn": "cn=svc,dc=example,dc=test"}})
    problems = "\n".join(info.value.problems)
    assert "ldap.uris" in problems and "ldap.base_dn" in problems
    assert "ldap.bind_password_file" in problems
