"""POP3 retrieval: the gateway beside Dovecot, driven by the same client.

    .venv/bin/python bench/bench_pop3.py [--messages 1000] [--size 10240] [--rounds 3]
        [--store sqlite|postgresql://...]

Both servers hold the same ``--messages`` messages of about ``--size`` octets in one
mailbox, listen on a loopback port chosen here, and run from temporary directories
started and stopped by this script:

* the gateway: ``gateway serve`` (one process) with a fresh store filled through the
  store's delivery API before the start; ``Set-PopSettings -LoginType PlainTextLogin``
  so that both servers are measured without TLS;
* Dovecot (Debian ``dovecot-core`` + ``dovecot-pop3d``): a private configuration,
  a Maildir, a passwd-file with a plain password, ``ssl = no``; run with
  ``dovecot -F`` as root (it drops privileges to the ``dovecot`` user).

One client (a raw-socket POP3 client in this script, one command at a time as mail
clients do) logs in, sends ``STAT``, ``UIDL``, then ``RETR 1`` .. ``RETR n``, and
``QUIT``. Both servers run at the same time and the rounds alternate between them,
so both see the same machine load. The first round of each server is a warm-up
(Dovecot builds its index, the gateway's store warms its page cache) and is not
counted; the median of the other rounds is printed with the ratio gateway / Dovecot
(the issue's target: the gateway within 1.5x Dovecot's time).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = ROOT / ".venv" / "bin" / "python"
sys.path.insert(0, str(ROOT))
from benchlib import free_port, gateway_node, wait_port  # noqa: E402

USER = "bench@bench.test"
PASSWORD = "bench-secret-1"


def make_message(i: int, size: int) -> bytes:
    head = (f"From: Sender {i} <sender{i}@example.test>\r\nTo: {USER}\r\n"
            f"Subject: benchmark message {i}\r\nMessage-ID: <{i}.bench@example.test>\r\n"
            f"Date: Sat, 28 Nov 2026 12:00:00 +0000\r\n\r\n").encode()
    line = b"The quick brown fox jumps over the lazy dog; .lines with dots too.\r\n"
    body = (line * (max(size - len(head), 0) // len(line) + 1))
    return head + body[:max(size - len(head), 2)].rstrip(b"\r\n") + b"\r\n"


# -- the gateway ------------------------------------------------------------------------------

async def fill_gateway(store_url: str, messages: list[bytes]) -> None:
    from auth.passwords import hash_password
    from gateway.store import open_store

    store = await open_store(store_url)
    try:
        await store.org.create_accepted_domain("bench.test", "bench.test")
        box = await store.org.create_mailbox(
            name="bench", primary_smtp_address=USER,
            password_hash=await asyncio.to_thread(hash_password, PASSWORD))
        await store.org.set_settings("pop", {"login_type": "PlainTextLogin"})
        inbox = await store.mail.get_special_folder(box.id, "inbox")
        for raw in messages:
            await store.mail.append(box.id, inbox.id, raw)
    finally:
        await store.close()


@contextlib.contextmanager
def gateway(port: int, messages: list[bytes], store: str) -> Iterator[None]:
    d = Path(tempfile.mkdtemp(prefix="bench-pop3-gateway-"))
    store_url = f"sqlite:///{d / 'gateway.db'}" if store == "sqlite" else store
    asyncio.run(fill_gateway(store_url, messages))
    try:
        with gateway_node({"pop3": port}, store_url=store_url, workdir=d):
            yield
    finally:
        shutil.rmtree(d, ignore_errors=True)


# -- Dovecot ----------------------------------------------------------------------------------

DOVECOT_CONF = """\
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
protocols = pop3
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{d}/mail/%n
pop3_uidl_format = %08Xu%08Xv
default_login_user = dovenull
default_internal_user = dovecot
first_valid_uid = 1
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/passwd
}}
userdb {{
  driver = static
  args = uid=dovecot gid=dovecot home={d}/home/%n
}}
service pop3-login {{
  inet_listener pop3 {{
    port = {port}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
"""


@contextlib.contextmanager
def dovecot(port: int, messages: list[bytes]) -> Iterator[None]:
    if shutil.which("dovecot") is None or not Path("/usr/lib/dovecot/pop3").exists():
        raise RuntimeError("Dovecot is not installed: apt-get install dovecot-pop3d")
    d = Path(tempfile.mkdtemp(prefix="bench-pop3-dovecot-"))
    maildir = d / "mail" / "bench"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    now = int(time.time())
    for i, raw in enumerate(messages):
        (maildir / "cur" / f"{now}.M{i}P1.bench:2,").write_bytes(raw.replace(b"\r\n", b"\n"))
    (d / "home" / "bench").mkdir(parents=True)
    (d / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
    conf = d / "dovecot.conf"
    conf.write_text(DOVECOT_CONF.format(d=d, port=port))
    subprocess.run(["chown", "-R", "dovecot:dovecot", str(d / "mail"), str(d / "home")],
                   check=True)
    d.chmod(0o755)
    proc = subprocess.Popen(["dovecot", "-F", "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT)
    try:
        wait_port(port)
        yield
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(d, ignore_errors=True)


# -- the client -------------------------------------------------------------------------------

class Client:
    """A minimal blocking POP3 client: one command at a time, raw socket reads."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), 30)
        self.buf = b""
        self.status()

    def _fill(self) -> None:
        data = self.sock.recv(262144)
        if not data:
            raise RuntimeError("server closed the connection")
        self.buf += data

    def status(self) -> bytes:
        while b"\r\n" not in self.buf:
            self._fill()
        line, _, self.buf = self.buf.partition(b"\r\n")
        if not line.startswith(b"+OK"):
            raise RuntimeError(f"server said {line!r}")
        return line

    def command(self, text: str) -> bytes:
        self.sock.sendall(text.encode() + b"\r\n")
        return self.status()

    def multiline(self, text: str) -> int:
        """Send a command with a multi-line answer; returns the payload octets."""
        self.command(text)
        start = 0
        if self.buf.startswith(b".\r\n"):
            self.buf = self.buf[3:]
            return 0
        while (end := self.buf.find(b"\r\n.\r\n", start)) < 0:
            start = max(len(self.buf) - 4, 0)
            self._fill()
        size = end + 2
        self.buf = self.buf[end + 5:]
        return size

    def close(self) -> None:
        self.sock.close()


def drive(port: int, count: int) -> tuple[float, int]:
    """Seconds for login + STAT + UIDL + RETR 1..count + QUIT; octets received."""
    start = time.perf_counter()
    c = Client(port)
    c.command(f"USER {USER}")
    c.command(f"PASS {PASSWORD}")
    stat = c.command("STAT").split()
    if int(stat[1]) != count:
        raise RuntimeError(f"expected {count} messages, the server has {stat[1].decode()}")
    c.multiline("UIDL")
    octets = sum(c.multiline(f"RETR {i}") for i in range(1, count + 1))
    c.command("QUIT")
    c.close()
    return time.perf_counter() - start, octets


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=1000)
    ap.add_argument("--size", type=int, default=10240, help="octets per message")
    ap.add_argument("--rounds", type=int, default=3, help="measured rounds per server")
    ap.add_argument("--store", default="sqlite",
                    help='"sqlite" (a fresh file) or a PostgreSQL URL of an empty database')
    args = ap.parse_args()
    messages = [make_message(i, args.size) for i in range(args.messages)]
    results: dict[str, list[float]] = {"gateway": [], "dovecot": []}
    octets: dict[str, int] = {}
    ports = {"gateway": free_port(), "dovecot": free_port()}
    # Both servers run at once and the rounds alternate, so that a change in the
    # machine's load between the two halves does not make the ratio.
    with gateway(ports["gateway"], messages, args.store), \
            dovecot(ports["dovecot"], messages):
        for port in ports.values():
            drive(port, args.messages)  # warm-up
        for _ in range(args.rounds):
            for name, port in ports.items():
                elapsed, got = drive(port, args.messages)
                results[name].append(elapsed)
                octets[name] = got
    total = sum(len(m) for m in messages)
    print(f"POP3 RETR of {args.messages} messages ({total / 2**20:.1f} MiB), "
          f"median of {args.rounds} alternating rounds after a warm-up, "
          f"store {args.store}:")
    for name, times in results.items():
        med = statistics.median(times)
        print(f"  {name:8s} {med * 1000:8.1f} ms  {args.messages / med:8.0f} msg/s  "
              f"{octets[name] / med / 2**20:7.1f} MiB/s   rounds: "
              + ", ".join(f"{t * 1000:.0f}" for t in times))
    ratio = statistics.median(results["gateway"]) / statistics.median(results["dovecot"])
    print(f"  gateway time / Dovecot time = {ratio:.2f} (target <= 1.5)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
