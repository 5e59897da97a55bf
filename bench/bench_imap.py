"""IMAP4: the gateway beside Dovecot, driven by the same client, in one run.

    .venv/bin/python bench/bench_imap.py [--messages 10000] [--size 4096]
        [--append-clients 10] [--appends 200] [--idle 200] [--rounds 3]
        [--store sqlite|postgresql://...] [--only append|flags|bodies|idle|login ...]

Both servers run from temporary directories started and stopped by this script, on
loopback ports chosen here, without TLS (``Set-ImapSettings -LoginType PlainTextLogin``
on the gateway, ``disable_plaintext_auth = no`` on Dovecot):

* the gateway: ``gateway serve`` (one process), store filled through the store API;
* Dovecot (Debian ``dovecot-imapd``): a private configuration, Maildir, passwd-file,
  ``dovecot -F`` as root.

Workloads (issue 5 §6), each the same client against both servers:

1. ``append``: ``--append-clients`` clients, each logged in to its own fresh mailbox,
   APPEND ``--appends`` messages one after the other; messages per second overall;
2. ``select+fetch flags``: SELECT INBOX + ``FETCH 1:* (UID FLAGS)`` on ``--messages``;
3. ``fetch bodies``: ``FETCH 1:* BODY.PEEK[]`` of every message; MiB/s;
4. ``idle memory``: ``--idle`` connections logged in, INBOX selected, in IDLE; the
   growth of the server's memory (proportional set size of all its processes, from
   ``/proc/<pid>/smaps_rollup``) per connection;
5. ``login``: 20 LOGIN + LOGOUT one after the other (argon2 on the gateway).

Both servers run at the same time and each workload alternates between them round by
round, so both see the same machine load. A warm-up precedes 2 and 3; the median of
``--rounds`` is printed (APPEND uses fresh mailboxes in every round). ``--only``
runs a subset of the workloads (e.g. ``--only append --messages 100``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = ROOT / ".venv" / "bin" / "python"
sys.path.insert(0, str(ROOT))
from benchlib import free_port, gateway_node, wait_port  # noqa: E402

USER = "bench@bench.test"
PASSWORD = "bench-secret-1"
_LIT = re.compile(rb"\{(\d+)\}\r\n$")
WORKLOADS = ("append", "flags", "bodies", "idle", "login")


def make_message(i: int, size: int) -> bytes:
    head = (f"From: Sender {i} <sender{i}@example.test>\r\nTo: {USER}\r\n"
            f"Subject: benchmark message {i}\r\nMessage-ID: <{i}.bench@example.test>\r\n"
            f"Date: Sat, 28 Nov 2026 12:00:00 +0000\r\n\r\n").encode()
    line = b"The quick brown fox jumps over the lazy dog, again and again.\r\n"
    body = line * (max(size - len(head), 0) // len(line) + 1)
    return head + body[:max(size - len(head), 2)].rstrip(b"\r\n") + b"\r\n"


def append_user(i: int) -> str:
    return f"append{i}@bench.test"


def rss_kib(pids: list[int]) -> int:
    """Proportional set size (shared pages divided among their users) of ``pids``, so
    that per-connection processes are not charged the whole of every shared library."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
    return total


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


# -- the gateway ------------------------------------------------------------------------------

async def fill_gateway(store_url: str, messages: list[bytes], appenders: int) -> None:
    from auth.passwords import hash_password
    from gateway.store import open_store

    store = await open_store(store_url)
    try:
        await store.org.create_accepted_domain("bench.test", "bench.test")
        pw = await asyncio.to_thread(hash_password, PASSWORD)
        box = await store.org.create_mailbox(name="bench", primary_smtp_address=USER,
                                             password_hash=pw)
        for i in range(appenders):
            await store.org.create_mailbox(name=f"append{i}",
                                           primary_smtp_address=append_user(i),
                                           password_hash=pw)
        await store.org.set_settings("imap", {"login_type": "PlainTextLogin",
                                              "max_connections_per_user": 100000})
        inbox = await store.mail.get_special_folder(box.id, "inbox")
        for start in range(0, len(messages), 64):
            await asyncio.gather(*(store.mail.append(box.id, inbox.id, raw, flags=(
                ["\\Seen"] if (start + k) % 3 else [])) for k, raw in
                enumerate(messages[start:start + 64])))
    finally:
        await store.close()


@contextlib.contextmanager
def gateway(port: int, messages: list[bytes], store: str, appenders: int
            ) -> Iterator[list[int]]:
    d = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    store_url = f"sqlite:///{d / 'gateway.db'}" if store == "sqlite" else store
    asyncio.run(fill_gateway(store_url, messages, appenders))
    try:
        with gateway_node({"imap": port}, store_url=store_url, workdir=d) as proc:
            yield [proc.pid]
    finally:
        shutil.rmtree(d, ignore_errors=True)


# -- Dovecot ----------------------------------------------------------------------------------

DOVECOT_CONF = """\
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{d}/mail/%n
# Dovecot's fastest Maildir mode: trust its index instead of re-reading the directory
# on every SELECT (fair to the peer: only this benchmark touches the Maildir).
maildir_very_dirty_syncs = yes
default_login_user = dovenull
default_internal_user = dovecot
first_valid_uid = 1
mail_max_userip_connections = 100000
default_process_limit = 100000
default_client_limit = 100000
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/passwd
}}
userdb {{
  driver = static
  args = uid=dovecot gid=dovecot home={d}/home/%n
}}
service imap-login {{
  inet_listener imap {{
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
"""


@contextlib.contextmanager
def dovecot(port: int, messages: list[bytes], appenders: int) -> Iterator[list[int]]:
    if shutil.which("dovecot") is None or not Path("/usr/lib/dovecot/imap").exists():
        raise RuntimeError("Dovecot is not installed: apt-get install dovecot-imapd")
    d = Path(tempfile.mkdtemp(prefix="bench-dovecot-"))
    maildir = d / "mail" / "bench"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    now = int(time.time())
    for i, raw in enumerate(messages):
        flags = "S" if i % 3 else ""
        (maildir / "cur" / f"{now}.M{i}P1.bench:2,{flags}").write_bytes(raw)
    users = [USER] + [append_user(i) for i in range(appenders)]
    for u in users:
        (d / "home" / u).mkdir(parents=True)
    (d / "passwd").write_text("".join(f"{u}:{{PLAIN}}{PASSWORD}\n" for u in users))
    conf = d / "dovecot.conf"
    conf.write_text(DOVECOT_CONF.format(d=d, port=port))
    subprocess.run(["chown", "-R", "dovecot:dovecot", str(d / "mail"), str(d / "home")],
                   check=True)
    d.chmod(0o755)
    proc = subprocess.Popen(["dovecot", "-F", "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT)
    try:
        wait_port(port)
        yield [proc.pid]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(d, ignore_errors=True)


# -- the client -------------------------------------------------------------------------------

class Client:
    """A minimal blocking IMAP client: one command at a time, literals read whole. The
    receive buffer is consumed by offset, so reading n lines costs O(n), not O(n^2)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), 60)
        self.buf = bytearray()
        self.pos = 0
        self.n = 0
        self.line()

    def _fill(self) -> None:
        if self.pos > 1 << 20:
            del self.buf[:self.pos]
            self.pos = 0
        data = self.sock.recv(1 << 20)
        if not data:
            raise RuntimeError("server closed the connection")
        self.buf += data

    def line(self) -> bytes:
        while (i := self.buf.find(b"\r\n", self.pos)) < 0:
            self._fill()
        line = bytes(self.buf[self.pos:i + 2])
        self.pos = i + 2
        return line

    def response(self) -> tuple[bytes, int]:
        """One response line; the octets of the literals it carried."""
        line = self.line()
        octets = 0
        while (m := _LIT.search(line)) is not None:
            n = int(m.group(1))
            while len(self.buf) - self.pos < n:
                self._fill()
            self.pos += n
            octets += n
            line = self.line()
        return line, octets

    def command(self, text: str | bytes) -> tuple[list[bytes], int]:
        self.n += 1
        tag = b"b%d" % self.n
        self.sock.sendall(tag + b" " + (text.encode() if isinstance(text, str) else text)
                          + b"\r\n")
        lines, octets = [], 0
        while True:
            line, got = self.response()
            octets += got
            lines.append(line)
            if line.startswith(tag + b" "):
                if not line.startswith(tag + b" OK"):
                    raise RuntimeError(f"server said {line!r}")
                return lines, octets

    def login(self, user: str) -> None:
        self.command(f'LOGIN "{user}" "{PASSWORD}"')

    def append(self, raw: bytes) -> None:
        self.n += 1
        tag = b"b%d" % self.n
        self.sock.sendall(tag + b" APPEND INBOX {%d}\r\n" % len(raw))
        cont = self.line()
        if not cont.startswith(b"+"):
            raise RuntimeError(f"no continuation: {cont!r}")
        self.sock.sendall(raw + b"\r\n")
        while True:
            line, _ = self.response()
            if line.startswith(tag + b" "):
                if not line.startswith(tag + b" OK"):
                    raise RuntimeError(f"APPEND: {line!r}")
                return

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def bench_append(port: int, clients: int, count: int, size: int, first: int = 0) -> float:
    """Messages per second of ``clients`` clients, each appending ``count`` messages
    into its own mailbox (``append_user(first)`` ...), which must be fresh."""
    msgs = [make_message(i, size) for i in range(count)]
    conns = []
    for i in range(first, first + clients):
        c = Client(port)
        c.login(append_user(i))
        conns.append(c)
    errors: list[BaseException] = []

    def run(c: Client) -> None:
        try:
            for raw in msgs:
                c.append(raw)
        except BaseException as exc:
            errors.append(exc)
    start = time.perf_counter()
    threads = [threading.Thread(target=run, args=(c,)) for c in conns]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    for c in conns:
        c.close()
    if errors:
        raise RuntimeError(f"append failed: {errors[0]}")
    return clients * count / elapsed


def bench_flags(port: int, count: int) -> float:
    c = Client(port)
    c.login(USER)
    start = time.perf_counter()
    c.command("SELECT INBOX")
    lines, _ = c.command("FETCH 1:* (UID FLAGS)")
    elapsed = time.perf_counter() - start
    c.close()
    if len(lines) - 1 != count:
        raise RuntimeError(f"expected {count} FETCH responses, got {len(lines) - 1}")
    return elapsed


def bench_bodies(port: int) -> tuple[float, int]:
    c = Client(port)
    c.login(USER)
    c.command("SELECT INBOX")
    start = time.perf_counter()
    _, octets = c.command("FETCH 1:* BODY.PEEK[]")
    elapsed = time.perf_counter() - start
    c.close()
    return elapsed, octets


def bench_idle(port: int, pids_of: list[int], n: int) -> float:
    pids = tree(pids_of[0])
    time.sleep(0.5)
    before = rss_kib(pids)
    conns = []
    for _ in range(n):
        c = Client(port)
        c.login(USER)
        c.command("SELECT INBOX")
        c.sock.sendall(b"i IDLE\r\n")
        c.line()
        conns.append(c)
    time.sleep(1.0)
    after = rss_kib(tree(pids_of[0]))
    for c in conns:
        c.close()
    return (after - before) / n


def bench_login(port: int, n: int = 20) -> float:
    start = time.perf_counter()
    for _ in range(n):
        c = Client(port)
        c.login(USER)
        c.command("LOGOUT")
        c.close()
    return (time.perf_counter() - start) / n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=10000)
    ap.add_argument("--size", type=int, default=4096, help="octets per message")
    ap.add_argument("--append-clients", type=int, default=10)
    ap.add_argument("--appends", type=int, default=200, help="messages per append client")
    ap.add_argument("--idle", type=int, default=200, help="connections held in IDLE")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--store", default="sqlite",
                    help='"sqlite" (a fresh file) or a PostgreSQL URL of an empty database')
    ap.add_argument("--only", action="append", choices=WORKLOADS, default=None,
                    help="run only this workload (repeatable); default: all")
    args = ap.parse_args()
    only = set(args.only or WORKLOADS)
    messages = [make_message(i, args.size) for i in range(args.messages)]
    appenders = args.append_clients * args.rounds  # fresh mailboxes for every round
    ports = {"gateway": free_port(), "dovecot": free_port()}
    res: dict[str, dict[str, float]] = {"gateway": {}, "dovecot": {}}
    # Both servers run at once and every workload alternates between them, round by
    # round, so that a change in the machine's load does not make the ratio.
    with contextlib.ExitStack() as stack:
        pids = {"gateway": stack.enter_context(gateway(ports["gateway"], messages,
                                                       args.store, appenders)),
                "dovecot": stack.enter_context(dovecot(ports["dovecot"], messages,
                                                       appenders))}

        def each(fn: Callable[[str, int], float]) -> dict[str, float]:
            """Median of ``--rounds`` alternating rounds of ``fn(name, round)``."""
            runs: dict[str, list[float]] = {"gateway": [], "dovecot": []}
            for k in range(args.rounds):
                for name in runs:
                    runs[name].append(fn(name, k))
            return {name: statistics.median(v) for name, v in runs.items()}

        def record(key: str, values: dict[str, float]) -> None:
            for name, value in values.items():
                res[name][key] = value

        if "flags" in only:
            for port in ports.values():
                bench_flags(port, args.messages)  # warm-up (Dovecot builds its index)
            record("flags_ms", each(lambda n, _k: bench_flags(ports[n], args.messages)
                                    * 1000))
        if "bodies" in only:
            for port in ports.values():
                bench_bodies(port)
            octets = {n: bench_bodies(ports[n])[1] for n in ports}
            record("bodies_mib_s", each(
                lambda n, _k: octets[n] / bench_bodies(ports[n])[0] / 2**20))
        if "append" in only:
            record("append_per_s", each(lambda n, k: bench_append(
                ports[n], args.append_clients, args.appends, args.size,
                first=k * args.append_clients)))
        if "idle" in only:
            record("idle_kib", {n: bench_idle(ports[n], pids[n], args.idle)
                                for n in ports})
        if "login" in only:
            record("login_ms", {n: bench_login(ports[n]) * 1000 for n in ports})
    g, d = res["gateway"], res["dovecot"]
    print(f"IMAP4, {args.messages} messages of {args.size} octets, store {args.store}, "
          f"median of {args.rounds} alternating rounds (after a warm-up for the "
          f"fetches; APPEND into fresh mailboxes every round):")
    rows = [
        (f"APPEND, {args.append_clients} clients (msg/s)", "append_per_s", "%.0f",
         ">= 1.0x"),
        ("SELECT + FETCH 1:* (UID FLAGS) (ms)", "flags_ms", "%.1f", "<= 1.5x time"),
        ("FETCH 1:* BODY.PEEK[] (MiB/s)", "bodies_mib_s", "%.1f", ">= 0.5x"),
        ("memory per IDLE connection (KiB)", "idle_kib", "%.0f", "<= 100 KiB"),
        ("LOGIN + LOGOUT (ms each)", "login_ms", "%.1f", "-"),
    ]
    print(f"  {'workload':42s} {'gateway':>10s} {'dovecot':>10s} {'ratio':>7s}  target")
    for label, key, fmt, target in rows:
        if key in g:
            ratio = g[key] / max(d[key], 1e-9)
            print(f"  {label:42s} {fmt % g[key]:>10s} {fmt % d[key]:>10s} {ratio:7.2f}  "
                  f"{target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
