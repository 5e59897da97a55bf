"""Shared pieces of the benchmarks: free ports, waiting for a listener, and a gateway
node started as an operator would (``python -m gateway serve``) with only the
listeners a benchmark needs."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = ROOT / ".venv" / "bin" / "python"
LISTENERS = ("smtp", "submission", "submissions", "imap", "imaps", "pop3", "pop3s", "https")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def listening_sockets(port: int) -> int:
    """How many sockets listen on 127.0.0.1:``port`` (one per SO_REUSEPORT process:
    a node's SMTP worker processes bind after the node announced itself)."""
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == f"0100007F:{port:04X}" and fields[3] == "0A":
            count += 1
    return count


def wait_listeners(port: int, count: int, timeout: float = 60.0) -> None:
    """Wait until ``count`` processes listen on 127.0.0.1:``port``."""
    deadline = time.monotonic() + timeout
    while listening_sockets(port) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {listening_sockets(port)} of {count} processes "
                               f"listen on port {port}")
        time.sleep(0.1)


@contextlib.contextmanager
def gateway_node(listeners: Mapping[str, int], *, store_url: str = "",
                 workdir: Path | None = None, extra_settings: str = "",
                 env: Mapping[str, str] | None = None,
                 prefix: str = "bench-gateway-") -> Iterator[subprocess.Popen[bytes]]:
    """Run ``gateway serve`` with ``listeners`` (name -> loopback port) and every other
    listener off; yields the process once every port answers, stops it with SIGTERM."""
    d = workdir or Path(tempfile.mkdtemp(prefix=prefix))
    def binding(name: str) -> str:
        return f'"127.0.0.1:{listeners[name]}"' if name in listeners else ""

    bindings = "".join(f"{name} = [{binding(name)}]\n" for name in LISTENERS)
    config = d / "gateway.toml"
    config.write_text(f"""\
server_name = "gateway.bench.test"
data_dir = "{d / 'var'}"
bootstrap_domain = "bench.test"
store_url = "{store_url}"
{extra_settings}
[logging]
level = "warning"
[http]
health_bind = []
[bindings]
{bindings}""")
    log = open(d / "gateway.log", "wb")  # closed below
    proc = subprocess.Popen([str(PYTHON), "-m", "gateway", "--config", str(config), "serve"],
                            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                            env=dict(os.environ, **(env or {})))
    try:
        for port in listeners.values():
            wait_port(port)
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        if workdir is None:
            shutil.rmtree(d, ignore_errors=True)
