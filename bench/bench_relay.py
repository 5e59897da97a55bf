"""Relay: SMTP in to delivered, local and remote, the gateway beside Postfix.

    .venv/bin/python bench/bench_relay.py [--messages 2000] [--size 2048]
        [--sessions 20] [--rounds 2] [--workers 0] [--cases local,remote]
        [--engine sqlite|postgresql] [--pg-url URL] [--poll 0.005] [--no-postfix]

Both servers run on loopback ports chosen here, started by this script and stopped
after it, and are driven the same way, over SMTP, by the same clients:

* the gateway: ``gateway serve`` (``bench/benchlib.py``) with a fresh store (SQLite in
  a temporary directory, or a fresh PostgreSQL database on 127.0.0.1:5432 dropped
  afterwards), ``GATEWAY_SMTP_WORKERS`` = ``--workers`` (0: one per CPU; a comma list
  runs one node per value), the default connectors (local mail arrives on "Default
  Frontend") plus, for the remote case, a receive connector "Anonymous Relay" on its
  own loopback port granting relay to 127.0.0.1 and a send connector for ``*`` whose
  smart host is the sink below - both made with ``gateway exec`` as an operator would;
* Postfix (Debian ``postfix``): a private configuration, ``smtpd`` on one loopback
  port, ``bench.test`` a virtual mailbox domain delivered into a Maildir by
  ``virtual(8)``, every other domain relayed to the same sink (``relayhost``).

Cases (each message ``--size`` octets of body plus a few header lines, ``--sessions``
concurrent sessions, several messages per session):

* local: to ``admin@bench.test`` (the gateway's bootstrap mailbox; for Postfix its
  Maildir). Visible = a row in the ``messages`` table of the admin mailbox, read by a
  separate read-only connection (SQLite ``mode=ro``, WAL), or a file in ``Maildir/new``;
* remote: to ``alice@outlook.test``. Visible = the sink (aiosmtpd on loopback, in its
  own process, advertising PIPELINING) has the message at end of data. The sink's own
  ceiling (``smtp-source`` straight to it) is printed first.

Per round and case, two runs per server, interleaved Postfix / gateway:

1. throughput: ``smtp-source -d`` sends ``--messages`` messages; printed messages/s =
   messages / (time the last message became visible - start of smtp-source), best of
   ``--rounds``, and the ratio gateway / Postfix;
2. latency: this script's asyncio SMTP client (PIPELINING: MAIL, RCPT, DATA in one
   write) sends ``--messages`` messages with distinct Message-IDs and notes the time of
   each end-of-data ``250``; a watcher process notes when each Message-ID becomes
   visible (polled every ``--poll`` seconds, the resolution of the figure). Printed:
   the run's delivered messages/s and the latency 250 -> visible, median and 99th
   percentile over every round. A negative latency means the message was visible
   before the client had read the ``250`` (the gateway commits local mail into the
   mailbox before it answers).

Needs root (Postfix) and the Debian package ``postfix`` (``smtp-source`` is part of it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import pwd
import re
import secrets
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Protocol

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import PYTHON, free_port, gateway_node, wait_listeners, wait_port  # noqa: E402

LOCAL_RCPT = "admin@bench.test"
REMOTE_RCPT = "alice@outlook.test"
SENDER = "bench@sender.test"

POSTFIX_MAIN = """\
compatibility_level = 3.6
queue_directory = {d}/spool
data_directory = {d}/data
mail_owner = postfix
myhostname = postfix.bench.test
mydomain = bench.test
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mydestination =
relayhost = [127.0.0.1]:{sink_port}
mynetworks = 127.0.0.0/8
virtual_mailbox_domains = bench.test
virtual_mailbox_base = {d}/mail
virtual_mailbox_maps = static:admin/Maildir/
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
virtual_minimum_uid = 1
alias_maps =
alias_database =
smtpd_recipient_restrictions = permit_mynetworks, reject
smtputf8_enable = no
maillog_file = /dev/stdout
default_process_limit = 200
"""

# The admin mailbox's rows of the messages table, with the Message-ID of each.
VISIBLE_SQL = ("SELECT m.id, c.message_id FROM messages m JOIN contents c ON c.id = "
               "m.content_id WHERE m.id > {p} AND m.mailbox_id = (SELECT mailbox_id FROM "
               "mailbox_addresses WHERE address = {p}) ORDER BY m.id")
MESSAGE_ID = re.compile(rb"^message-id:[ \t]*(<[^>\r\n]*>)", re.IGNORECASE | re.MULTILINE)


def _norm(message_id: str) -> str:
    return message_id.strip().strip("<>").lower()


# --- watchers: each runs in a process of its own and notes when messages appear ------

class Source(Protocol):
    def __init__(self, target: str) -> None: ...
    def mark(self) -> None: ...
    def poll(self) -> list[tuple[str, float]]: ...


class SqlSource:
    """New rows of the admin mailbox in the gateway's store, read-only."""

    def __init__(self, url: str) -> None:
        if url.startswith("sqlite:///"):
            path = url[len("sqlite:///"):]
            self.conn: Any = sqlite3.connect(f"file:{path}?mode=ro", uri=True,
                                             isolation_level=None)
            self.sql = VISIBLE_SQL.format(p="?")
        else:
            import psycopg

            self.conn = psycopg.connect(url, autocommit=True)
            self.sql = VISIBLE_SQL.format(p="%s")
        self.last = 0

    def mark(self) -> None:
        row = self.conn.execute("SELECT COALESCE(MAX(id), 0) FROM messages").fetchone()
        self.last = int(row[0])

    def poll(self) -> list[tuple[str, float]]:
        rows = self.conn.execute(self.sql, (self.last, LOCAL_RCPT)).fetchall()
        now = time.time()
        if rows:
            self.last = int(rows[-1][0])
        return [(_norm(str(mid)), now) for _, mid in rows]


class MaildirSource:
    """New files in a Maildir's ``new`` directory, with their Message-ID."""

    def __init__(self, path: str) -> None:
        self.new = Path(path)
        self.known: set[str] = set()

    def _names(self) -> set[str]:
        try:
            return {e.name for e in os.scandir(self.new)}
        except FileNotFoundError:
            return set()

    def mark(self) -> None:
        self.known = self._names()

    def poll(self) -> list[tuple[str, float]]:
        names = self._names()
        now = time.time()
        fresh = names - self.known
        self.known = names
        out = []
        for name in fresh:
            with open(self.new / name, "rb") as f:  # Maildir files end lines in LF
                m = MESSAGE_ID.search(f.read(8192).split(b"\n\n", 1)[0])
            out.append((_norm(m.group(1).decode()) if m else "", now))
        return out


class SinkSource:
    """An aiosmtpd sink; every message is noted at end of data, before its 250."""

    def __init__(self, port: str) -> None:
        from aiosmtpd.controller import Controller

        self.lock = threading.Lock()
        self.got: list[tuple[str, float]] = []
        source = self

        class Handler:
            async def handle_EHLO(self, server: Any, session: Any, envelope: Any,
                                  hostname: str, responses: list[str]) -> list[str]:
                session.host_name = hostname
                return [responses[0], "250-PIPELINING", *responses[1:]]

            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                now = time.time()
                head = bytes(envelope.original_content or b"").split(b"\r\n\r\n", 1)[0]
                m = MESSAGE_ID.search(head)
                with source.lock:
                    source.got.append((_norm(m.group(1).decode()) if m else "", now))
                return "250 2.0.0 ok"

        self.controller = Controller(Handler(), hostname="127.0.0.1", port=int(port),
                                     server_hostname="sink.test")
        self.controller.start()

    def mark(self) -> None:
        with self.lock:
            self.got.clear()

    def poll(self) -> list[tuple[str, float]]:
        with self.lock:
            out, self.got = self.got, []
        return out


def watch(kind: str, target: str, conn: Connection) -> None:
    """Watcher process: per request ``(expected, timeout, interval)`` it marks what is
    there, answers "ready", polls until ``expected`` new messages appeared (or the
    timeout) and answers ``(count, time of the last, {message-id: time seen})``."""
    kinds: dict[str, type[Source]] = {"sql": SqlSource, "maildir": MaildirSource,
                                      "sink": SinkSource}
    source = kinds[kind](target)
    conn.send("started")
    while True:
        request = conn.recv()
        if request is None:
            return
        expected, timeout, interval = request
        source.mark()
        conn.send("ready")
        seen: dict[str, float] = {}
        count, last = 0, 0.0
        deadline = time.monotonic() + timeout
        while count < expected and time.monotonic() < deadline:
            for mid, at in source.poll():
                count += 1
                last = max(last, at)
                if mid:
                    seen.setdefault(mid, at)
            time.sleep(interval)
        conn.send((count, last, seen))


class Watcher:
    """The parent's handle on a watcher process."""

    def __init__(self, kind: str, target: str) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=watch, args=(kind, target, child), daemon=True)
        self.proc.start()
        if not self.conn.poll(60):
            raise RuntimeError(f"watcher {kind} did not start")
        self.conn.recv()

    def arm(self, expected: int, timeout: float, interval: float) -> None:
        self.conn.send((expected, timeout, interval))
        if self.conn.recv() != "ready":
            raise RuntimeError("watcher not ready")

    def result(self) -> tuple[int, float, dict[str, float]]:
        count, last, seen = self.conn.recv()
        return int(count), float(last), seen

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.send(None)
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.terminate()


# --- clients -----------------------------------------------------------------------

def smtp_source(port: int, messages: int, size: int, sessions: int, rcpt: str) -> None:
    result = subprocess.run(
        ["smtp-source", "-s", str(sessions), "-m", str(messages), "-l", str(size), "-d",
         "-f", SENDER, "-t", rcpt, "-M", "client.bench.test", f"127.0.0.1:{port}"],
        capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"smtp-source failed: {result.stderr.strip()}")


def message(message_id: str, rcpt: str, size: int) -> bytes:
    """Headers, then ``size`` octets of body (as ``smtp-source -l``), CRLF lines."""
    head = (f"From: <{SENDER}>\r\nTo: <{rcpt}>\r\nSubject: bench\r\n"
            f"Message-ID: {message_id}\r\n\r\n").encode()
    line = b"x" * 78 + b"\r\n"
    body = line * (size // len(line))
    return head + body + b"y" * max(0, size - len(body) - 2) + b"\r\n"


async def _reply(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One (possibly multi-line) reply (RFC 5321 §4.2.1)."""
    while True:
        line = await reader.readline()
        if len(line) < 4:
            raise RuntimeError(f"connection lost or bad reply {line!r}")
        if line[3:4] != b"-":
            return int(line[:3]), line


async def _session(port: int, rcpt: str, batch: list[tuple[str, bytes]],
                   stamps: dict[str, float]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        code, line = await _reply(reader)
        writer.write(b"EHLO client.bench.test\r\n")
        lines = []
        while True:
            raw = await reader.readline()
            lines.append(raw)
            if raw[3:4] != b"-":
                break
        if not any(x[4:].upper().startswith(b"PIPELINING") for x in lines):
            raise RuntimeError("server does not offer PIPELINING")
        for mid, data in batch:
            # RFC 2920 §3.1: MAIL, RCPT and DATA in one group, DATA last.
            writer.write(f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<{rcpt}>\r\nDATA\r\n".encode())
            codes = [(await _reply(reader)) for _ in range(3)]
            if [c for c, _ in codes] != [250, 250, 354]:
                raise RuntimeError(f"transaction refused: {codes}")
            writer.write(data + b".\r\n")  # no line of ``data`` starts with "."
            code, line = await _reply(reader)
            stamps[_norm(mid)] = time.time()
            if code != 250:
                raise RuntimeError(f"end of data refused: {line!r}")
        writer.write(b"QUIT\r\n")
        await _reply(reader)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def timed_client(port: int, messages: int, size: int, sessions: int,
                 rcpt: str) -> dict[str, float]:
    """Send ``messages`` over ``sessions`` pipelined sessions; {message-id: time of 250}."""
    tag = secrets.token_hex(4)
    batches: list[list[tuple[str, bytes]]] = [[] for _ in range(sessions)]
    for n in range(messages):
        mid = f"<bench.{tag}.{n}@sender.test>"
        batches[n % sessions].append((mid, message(mid, rcpt, size)))
    stamps: dict[str, float] = {}

    async def run() -> None:
        await asyncio.gather(*(_session(port, rcpt, b, stamps) for b in batches if b))
    asyncio.run(run())
    return stamps


# --- servers -----------------------------------------------------------------------

@contextlib.contextmanager
def postfix(port: int, sink_port: int) -> Iterator[Path]:
    """Postfix on ``port``; yields the admin Maildir's ``new`` directory."""
    d = Path(tempfile.mkdtemp(prefix="bench-relay-postfix-"))
    d.chmod(0o755)  # Postfix's unprivileged daemons must reach the queue
    try:
        for sub in ("etc", "spool", "data", "mail"):
            (d / sub).mkdir()
        pw = pwd.getpwnam("postfix")
        (d / "etc" / "main.cf").write_text(POSTFIX_MAIN.format(
            d=d, uid=pw.pw_uid, gid=pw.pw_gid, sink_port=sink_port))
        master = Path("/etc/postfix/master.cf").read_text().splitlines()
        master = [f"127.0.0.1:{port} inet  n       -       y       -       -       smtpd"
                  if line.startswith("smtp      inet") else line for line in master]
        (d / "etc" / "master.cf").write_text("\n".join(master) + "\n")
        etc = str(d / "etc")
        subprocess.run(["postfix", "-c", etc, "set-permissions", "create-missing"],
                       check=True, capture_output=True)
        shutil.chown(d / "data", user="postfix")
        shutil.chown(d / "mail", user="postfix", group=pw.pw_gid)
        log = open(d / "postfix.log", "wb")  # closed below
        proc = subprocess.Popen(["postfix", "-c", etc, "start-fg"], stdout=log,
                                stderr=subprocess.STDOUT)
        try:
            wait_port(port)
            yield d / "mail" / "admin" / "Maildir" / "new"
        finally:
            subprocess.run(["postfix", "-c", etc, "stop"], capture_output=True, check=False)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()
    finally:
        shutil.rmtree(d, ignore_errors=True)


@dataclass
class Gateway:
    smtp_port: int
    relay_port: int
    store_url: str


@contextlib.contextmanager
def store_url(engine: str, pg_url: str, tmp: Path) -> Iterator[str]:
    """A fresh store: a SQLite file in ``tmp``, or a PostgreSQL database dropped after."""
    if engine == "sqlite":
        yield f"sqlite:///{tmp / 'store.db'}"
        return
    import psycopg

    name = f"bench_relay_{secrets.token_hex(6)}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield pg_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _exec(config: Path, line: str) -> None:
    result = subprocess.run([str(PYTHON), "-m", "gateway", "--config", str(config), "exec",
                             line], cwd=ROOT, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"gateway exec {line!r}: {result.stdout}{result.stderr}")


@contextlib.contextmanager
def gateway(workers: int, engine: str, pg_url: str, sink_port: int) -> Iterator[Gateway]:
    """A gateway node with a fresh store, set up for both cases."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-relay-gateway-"))
    try:
        with store_url(engine, pg_url, tmp) as url:
            gw = Gateway(free_port(), free_port(), url)
            with gateway_node({"smtp": gw.smtp_port}, store_url=url, workdir=tmp,
                              env={"GATEWAY_SMTP_WORKERS": str(workers)}):
                wait_listeners(gw.smtp_port, workers)
                config = tmp / "gateway.toml"
                _exec(config, f'New-ReceiveConnector -Name "Anonymous Relay" -Usage Custom '
                              f'-PermissionGroups AnonymousUsers -Bindings '
                              f'127.0.0.1:{gw.relay_port} -RemoteIpRanges 127.0.0.1')
                _exec(config, 'Get-ReceiveConnector "Anonymous Relay" | Add-ADPermission '
                              '-User "NT AUTHORITY\\ANONYMOUS LOGON" -ExtendedRights '
                              '"Ms-Exch-SMTP-Accept-Any-Recipient"')
                _exec(config, f"New-SendConnector Sink -AddressSpaces '*' "
                              f"-SmartHosts '[127.0.0.1]:{sink_port}'")
                # Every SMTP process follows the connectors by polling the organisation
                # (org_poll_seconds, 1 s): wait until all listen on the new port, then
                # one more poll so the last change (the permission) is seen everywhere.
                wait_listeners(gw.relay_port, workers)
                time.sleep(1.5)
                yield gw
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --- measuring ---------------------------------------------------------------------

@dataclass
class Figures:
    rates: list[float] = field(default_factory=list)         # smtp-source runs
    timed_rates: list[float] = field(default_factory=list)   # latency-client runs
    latencies: list[float] = field(default_factory=list)     # seconds, every round
    missing: int = 0                                          # not seen by the watcher


def throughput(watcher: Watcher, port: int, rcpt: str, args: argparse.Namespace) -> float:
    watcher.arm(args.messages, args.timeout, args.poll)
    start = time.time()
    smtp_source(port, args.messages, args.size, args.sessions, rcpt)
    count, last, _ = watcher.result()
    if count < args.messages:
        raise RuntimeError(f"only {count} of {args.messages} messages became visible")
    return args.messages / (last - start)


def latency(watcher: Watcher, port: int, rcpt: str, args: argparse.Namespace,
            into: Figures) -> None:
    watcher.arm(args.messages, args.timeout, args.poll)
    start = time.time()
    stamps = timed_client(port, args.messages, args.size, args.sessions, rcpt)
    count, last, seen = watcher.result()
    if count < args.messages:
        raise RuntimeError(f"only {count} of {args.messages} messages became visible")
    into.timed_rates.append(args.messages / (last - start))
    into.latencies.extend(seen[mid] - t for mid, t in stamps.items() if mid in seen)
    into.missing += sum(1 for mid in stamps if mid not in seen)


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _row(label: str, f: Figures, ratio: str) -> str:
    lat = f.latencies
    med = statistics.median(lat) * 1000 if lat else float("nan")
    miss = f"  ({f.missing} Message-IDs not matched)" if f.missing else ""
    return (f"  {label:<28} {max(f.rates):>9.1f} {ratio:>6} {max(f.timed_rates):>9.1f} "
            f"{med:>9.1f} {_pct(lat, 0.99) * 1000:>9.1f}{miss}")


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Throughput: smtp-source, start to the last message visible. Latency: this "
               "script's pipelined client, 250 to visible (watcher polling every --poll s).")
    ap.add_argument("--messages", type=int, default=2000, help="messages per run (2000)")
    ap.add_argument("--size", type=int, default=2048, help="body octets (2048)")
    ap.add_argument("--sessions", type=int, default=20, help="concurrent sessions (20)")
    ap.add_argument("--rounds", type=int, default=2,
                    help="interleaved rounds; throughput is the best (2)")
    ap.add_argument("--workers", default="0",
                    help="gateway SMTP processes, comma list, one node each (0: one per CPU)")
    ap.add_argument("--cases", default="local,remote", help="comma list of local, remote (both)")
    ap.add_argument("--engine", default="sqlite", choices=("sqlite", "postgresql"),
                    help="gateway store: a fresh SQLite file or PostgreSQL database")
    ap.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres",
                    help="PostgreSQL server (a database on it is created and dropped)")
    ap.add_argument("--poll", type=float, default=0.005,
                    help="watcher poll interval, seconds (0.005)")
    ap.add_argument("--timeout", type=float, default=300.0,
                    help="seconds to wait for every message to become visible (300)")
    ap.add_argument("--no-postfix", action="store_true", help="measure the gateway only")
    args = ap.parse_args()
    cases = [c for c in args.cases.split(",") if c]
    if not set(cases) <= {"local", "remote"}:
        ap.error("--cases: local, remote")
    with_postfix = not args.no_postfix
    if shutil.which("smtp-source") is None or (with_postfix and shutil.which("postfix") is None):
        print("needs the Debian package postfix (smtp-source, postfix)", file=sys.stderr)
        return 2
    rcpts = {"local": LOCAL_RCPT, "remote": REMOTE_RCPT}
    sink_port, pf_port = free_port(), free_port()
    sink = Watcher("sink", str(sink_port))
    try:
        if "remote" in cases:  # the sink's own ceiling, so that it is known not to bind
            ceiling = max(throughput(sink, sink_port, REMOTE_RCPT, args)
                          for _ in range(args.rounds))
            print(f"sink alone (smtp-source straight to it): {ceiling:.1f} msg/s", flush=True)
        with contextlib.ExitStack() as stack:
            pf_watch: Watcher | None = None
            if with_postfix:
                new = stack.enter_context(postfix(pf_port, sink_port))
                pf_watch = Watcher("maildir", str(new))
                stack.callback(pf_watch.close)
            for w in args.workers.split(","):
                workers = int(w) or os.cpu_count() or 1
                lines = run_node(args, cases, rcpts, workers, sink, sink_port, pf_watch,
                                 pf_port)
                print("\n".join(lines), flush=True)
    finally:
        sink.close()
    return 0


def run_node(args: argparse.Namespace, cases: list[str], rcpts: dict[str, str],
             workers: int, sink: Watcher, sink_port: int, pf_watch: Watcher | None,
             pf_port: int) -> list[str]:
    results: dict[tuple[str, str], Figures] = {}
    with gateway(workers, args.engine, args.pg_url, sink_port) as gw:
        gw_watch = Watcher("sql", gw.store_url)
        try:
            watchers = {"local": gw_watch, "remote": sink}
            ports = {"local": gw.smtp_port, "remote": gw.relay_port}
            servers: list[tuple[str, int, dict[str, Watcher]]] = []
            if pf_watch is not None:
                servers.append(("postfix", pf_port, {"local": pf_watch, "remote": sink}))
            for case in cases:  # warm up: imports, caches, connections to the sink
                for _name, port, ws in servers:
                    _warm(ws[case], port, rcpts[case], args)
                _warm(watchers[case], ports[case], rcpts[case], args)
            for _ in range(args.rounds):
                for case in cases:
                    order = [*((n, p, ws[case]) for n, p, ws in servers),
                             ("gateway", ports[case], watchers[case])]
                    for name, port, watcher in order:
                        f = results.setdefault((case, name), Figures())
                        f.rates.append(throughput(watcher, port, rcpts[case], args))
                        latency(watcher, port, rcpts[case], args, f)
        finally:
            gw_watch.close()
    lines = [f"gateway: {workers} SMTP process(es), store {args.engine}; "
             f"{args.messages} messages x {args.size} octets, {args.sessions} sessions, "
             f"{args.rounds} interleaved round(s); watcher poll {args.poll * 1000:.0f} ms",
             f"  {'':<28} {'smtp-source':>16} {'pipelined client, 250 -> visible':>30}",
             f"  {'':<28} {'msg/s':>9} {'ratio':>6} {'msg/s':>9} {'median ms':>9} "
             f"{'p99 ms':>9}"]
    labels = {("local", "postfix"): "local: postfix -> Maildir",
              ("local", "gateway"): "local: gateway -> mailbox",
              ("remote", "postfix"): "remote: postfix -> sink",
              ("remote", "gateway"): "remote: gateway -> sink"}
    for case in cases:
        pf = results.get((case, "postfix"))
        gwf = results[(case, "gateway")]
        if pf is not None:
            lines.append(_row(labels[(case, "postfix")], pf, ""))
        ratio = f"{max(gwf.rates) / max(pf.rates):.2f}" if pf is not None else ""
        lines.append(_row(labels[(case, "gateway")], gwf, ratio))
    return lines


def _warm(watcher: Watcher, port: int, rcpt: str, args: argparse.Namespace) -> None:
    warm = argparse.Namespace(**{**vars(args), "messages": 50, "sessions": 4})
    throughput(watcher, port, rcpt, warm)
    latency(watcher, port, rcpt, warm, Figures())


if __name__ == "__main__":
    sys.exit(main())
