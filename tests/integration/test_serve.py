"""`gateway serve` and `gateway exec` as an operator runs them: real processes, real sockets.

The issue's acceptance lines run against a live node; the node bootstraps an empty
store, answers /healthz over HTTP and HTTPS, notices organisation changes without a
restart, and stops cleanly on SIGTERM.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def other_bindings() -> str:
    """Free loopback ports for every protocol listener, so tests never collide with
    another node (or another test run) on the quick-start ports."""
    names = ("smtp", "submission", "submissions", "imap", "imaps", "pop3", "pop3s")
    return "".join(f'{name} = ["127.0.0.1:{free_port()}"]\n' for name in names)


def write_config(tmp_path: Path, store_url: str) -> tuple[Path, int, int]:
    health, https = free_port(), free_port()
    cfg = tmp_path / "gateway.toml"
    cfg.write_text(f"""
server_name = "mail1.example.test"
data_dir = "{tmp_path / 'var'}"
store_url = "{store_url}"
org_poll_seconds = 0.1
shutdown_grace_seconds = 2
[http]
health_bind = ["127.0.0.1:{health}"]
[bindings]
https = ["127.0.0.1:{https}"]
{other_bindings()}""")
    return cfg, health, https


def gateway(cfg: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway", "--config", str(cfg), *args],
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)


class Server:
    def __init__(self, cfg: Path, log_path: Path) -> None:
        self.log_path = log_path
        self.log = open(log_path, "w")  # closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "--config", str(cfg), "serve"],
            stdout=self.log, stderr=subprocess.STDOUT, cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})

    def output(self) -> str:
        return self.log_path.read_text()

    def wait_for(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output():
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"{text!r} not seen; output:\n{self.output()}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


@pytest.fixture
def node(tmp_path: Path, store_url: str) -> Iterator[tuple[Server, Path, int, int]]:
    cfg, health, https = write_config(tmp_path, store_url)
    server = Server(cfg, tmp_path / "serve.log")
    try:
        server.wait_for("gateway mail1.example.test is up")
        yield server, cfg, health, https
    finally:
        server.stop()


def get_json(url: str, context: ssl.SSLContext | None = None) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(url, timeout=10, context=context) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_serve_bootstraps_answers_health_and_applies_admin_changes(
        node: tuple[Server, Path, int, int], tmp_path: Path) -> None:
    server, cfg, health, https = node
    out = server.output()
    # First start of an empty store: default domain and admin mailbox, password once.
    assert "created accepted domain example.test and mailbox admin@example.test" in out
    assert "Its password, shown this once:" in out
    assert f"health: http://127.0.0.1:{health}/" in out

    status, body = get_json(f"http://127.0.0.1:{health}/healthz")
    assert status == 200 and body["status"] == "ok" and body["store"] == "ok"

    # The HTTPS listener uses the self-signed certificate generated on first start.
    cert = tmp_path / "var" / "tls" / "cert.pem"
    assert cert.exists() and (tmp_path / "var" / "tls" / "key.pem").stat().st_mode & 0o077 == 0
    ctx = ssl.create_default_context(cafile=str(cert))
    status, body = get_json(f"https://localhost:{https}/healthz", context=ctx)
    assert status == 200 and body["server"] == "mail1.example.test"

    # The acceptance lines, against the running node.
    r = gateway(cfg, "exec", "New-AcceptedDomain -Name example2 -DomainName example2.test")
    assert r.returncode == 0, r.stderr
    r = gateway(cfg, "exec", 'New-Mailbox -Name alice -PrimarySmtpAddress alice@example2.test '
                             '-Password "S3cret!pass"')
    assert r.returncode == 0, r.stderr
    assert "S3cret!pass" not in r.stdout
    r = gateway(cfg, "exec", "Get-Mailbox alice")
    assert r.returncode == 0, r.stderr
    assert "alice@example2.test" in r.stdout
    r = gateway(cfg, "exec", "Get-Mailbox alice", "--format", "json")
    assert r.returncode == 0, r.stderr
    assert "alice@example2.test" in r.stdout

    # The node notices the organisation change without a restart.
    server.wait_for("organisation configuration changed", timeout=10)

    # A bad cmdlet is a clear error, not a traceback.
    r = gateway(cfg, "exec", "Get-Mailboxx alice")
    assert r.returncode == 1
    assert "Get-Mailbox" in r.stderr and "Traceback" not in r.stderr

    assert server.stop() == 0
    assert "stopped" in server.output()
    assert "Traceback" not in server.output()


def test_second_start_does_not_bootstrap_again(tmp_path: Path, store_url: str) -> None:
    cfg, _, _ = write_config(tmp_path, store_url)
    first = Server(cfg, tmp_path / "one.log")
    first.wait_for("is up")
    assert first.stop() == 0
    second = Server(cfg, tmp_path / "two.log")
    second.wait_for("is up")
    assert second.stop() == 0
    assert "First start" in first.output()
    assert "First start" not in second.output()


def test_bad_settings_exit_with_every_problem_and_no_traceback(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text('server_nam = "x"\n[bindings]\nsmtp = ["0.0.0.0:0"]\n')
    r = gateway(cfg, "serve", timeout=30)
    assert r.returncode == 2
    assert "server_nam: unknown key" in r.stderr
    assert "bindings.smtp: expected" in r.stderr
    assert "Traceback" not in r.stderr


def test_port_in_use_is_reported_clearly(tmp_path: Path) -> None:
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    try:
        cfg = tmp_path / "g.toml"
        cfg.write_text(f'data_dir = "{tmp_path / "var"}"\n[http]\n'
                       f'health_bind = ["127.0.0.1:{port}"]\n[bindings]\n'
                       f'https = ["127.0.0.1:{free_port()}"]\n{other_bindings()}')
        r = gateway(cfg, "serve", timeout=60)
        assert r.returncode == 1
        assert f"cannot listen on 127.0.0.1:{port}: the address is already in use" in r.stderr
        assert "Traceback" not in r.stderr
    finally:
        busy.close()


def test_help_explains_commands() -> None:
    r = subprocess.run([sys.executable, "-m", "gateway", "--help"], capture_output=True,
                       text=True, cwd=ROOT, timeout=30)
    assert r.returncode == 0
    for word in ("serve", "exec", "shell", "check-config", "GATEWAY_CONFIG", "--config"):
        assert word in r.stdout
