"""A `gateway serve` node with several SMTP processes, for tests on real sockets:
only the port-25 binding on, short organisation polling, its log in ``serve.log``."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def listening_sockets(port: int) -> int:
    """Sockets listening on 127.0.0.1:``port`` (one per SO_REUSEPORT process)."""
    needle = f"0100007F:{port:04X}"
    return sum(1 for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
               if line.split()[1] == needle and line.split()[3] == "0A")


@dataclass
class Node:
    config: Path
    log: Path
    proc: subprocess.Popen[bytes]
    data_dir: Path

    def wait_listening(self, port: int, processes: int, timeout: float = 60) -> None:
        """Until ``processes`` processes listen on ``port`` (workers bind after the node)."""
        deadline = time.monotonic() + timeout
        while listening_sockets(port) < processes:
            assert self.proc.poll() is None and time.monotonic() < deadline, \
                self.log.read_text()
            time.sleep(0.1)

    def exec(self, line: str) -> None:
        """``gateway exec`` against this node's store."""
        result = subprocess.run([sys.executable, "-m", "gateway", "--config",
                                 str(self.config), "exec", line], cwd=ROOT,
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr


@contextlib.contextmanager
def smtp_node(tmp_path: Path, smtp_port: int, processes: int) -> Iterator[Node]:
    """Run the node until the block ends; then SIGTERM, and it must exit 0."""
    config = tmp_path / "gateway.toml"
    config.write_text(f"""
server_name = "mail1.example.test"
data_dir = "{tmp_path / 'var'}"
bootstrap_domain = "example.test"
org_poll_seconds = 0.2
shutdown_grace_seconds = 2
[http]
health_bind = []
[bindings]
smtp = ["127.0.0.1:{smtp_port}"]
submission = []
submissions = []
imap = []
imaps = []
pop3 = []
pop3s = []
https = []
""")
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "--config", str(config), "serve"],
            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
            env={**os.environ, "GATEWAY_SMTP_WORKERS": str(processes)})
        node = Node(config, log_path, proc, tmp_path / "var")
        try:
            node.wait_listening(smtp_port, processes)
            yield node
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
    assert proc.returncode == 0, log_path.read_text()
