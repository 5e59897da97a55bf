"""Relay throughput: accepted-to-delivered, local and remote, beside Postfix.

    .venv/bin/python bench/bench_relay.py [--messages 2000] [--size 2048]
        [--sessions 20] [--engine sqlite|postgresql] [--no-postfix]

Measured in one run on this machine:

* gateway, local: ``--sessions`` concurrent submitters call ``Relay.submit`` (durable
  before it returns) for one local mailbox while the relay worker delivers into the
  Inbox; printed: messages/s from the first submission to the last delivery, and the
  queue latency (submit returned -> DELIVER committed) median and 99th percentile;
* gateway, remote: the same into a loopback aiosmtpd sink through a smart-host send
  connector (pipelining, connection reuse);
* Postfix (Debian ``postfix``, private configuration, loopback only): ``smtp-source``
  sends over SMTP with ``--sessions`` sessions to a virtual mailbox delivered into a
  Maildir; messages/s from the start to the last file in ``Maildir/new``.

The gateway figure excludes the SMTP conversation (bench_smtp.py measures that);
Postfix's includes it. Needs root for Postfix.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchlib import free_port  # noqa: E402

from gateway.relay import Relay, TransportSettings  # noqa: E402
from gateway.relay.routing import StaticResolver  # noqa: E402
from gateway.store import open_store  # noqa: E402
from gateway.store.send_connectors import AddressSpace  # noqa: E402

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
relayhost =
mynetworks = 127.0.0.0/8
virtual_mailbox_domains = bench.test
virtual_mailbox_base = {d}/mail
virtual_mailbox_maps = static:user/Maildir/
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


def message(n: int, size: int) -> bytes:
    head = (f"From: bench@sender.test\r\nTo: user@bench.test\r\nSubject: bench {n}\r\n"
            f"Message-ID: <bench{n}@sender.test>\r\n\r\n").encode()
    line = b"x" * 76 + b"\r\n"
    return head + line * max(1, (size - len(head)) // len(line))


async def gateway_run(url: str, messages: int, size: int, sessions: int,
                      remote_port: int | None) -> tuple[float, list[float]]:
    store = await open_store(url)
    try:
        await store.org.create_accepted_domain("bench", "bench.test")
        box = await store.org.create_mailbox(name="user",
                                             primary_smtp_address="user@bench.test")
        rcpt = "user@bench.test"
        if remote_port is not None:
            await store.send_connectors.create(
                name="Sink", address_spaces=(AddressSpace("*", 1),),
                smart_hosts=(f"sink.test:{remote_port}",), dns_routing_enabled=False)
            rcpt = "someone@remote.test"
        settings = replace(TransportSettings(), poll_interval=0.05,
                           max_concurrent_deliveries=100)
        relay = Relay(store, server_name="gateway.bench.test", settings=settings,
                      resolver=StaticResolver(hosts={"sink.test": ["127.0.0.1"]}))
        worker = asyncio.create_task(relay.run())
        submitted: dict[int, float] = {}
        start = time.perf_counter()
        wall0 = time.time()

        async def submitter(k: int) -> None:
            for n in range(k, messages, sessions):
                q = await relay.submit("bench@sender.test", [rcpt], message(n, size))
                submitted[q.queue_id] = time.time()
        await asyncio.gather(*(submitter(k) for k in range(sessions)))
        await _drained(store)
        elapsed = time.perf_counter() - start
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker
        event = "DELIVER" if remote_port is None else "SEND"
        done = await store.tracking.search(event_id=event, start=wall0, limit=10_000)
        latencies = [e.at - submitted[e.internal_message_id] for e in done
                     if e.internal_message_id in submitted]
        if remote_port is None:
            folder = await store.mail.get_special_folder(box.id, "inbox")
            count = len(await store.mail.list_uids(folder.id))
            assert count == messages, f"{count} delivered of {messages}"
        return messages / elapsed, latencies
    finally:
        await store.close()


async def _drained(store: object) -> None:
    """Poll until the queue is empty (the benchmark's end mark)."""
    queue = store.queue  # type: ignore[attr-defined]
    while await queue.list_messages(limit=1):  # noqa: ASYNC110 - polling the store
        await asyncio.sleep(0.01)


@contextlib.contextmanager
def sink() -> Iterator[tuple[int, list[int]]]:
    from aiosmtpd.controller import Controller

    got: list[int] = []

    class Handler:
        async def handle_DATA(self, server: object, session: object, envelope: object
                              ) -> str:
            got.append(1)
            return "250 2.0.0 ok"
    port = free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, got
    finally:
        controller.stop()


def postfix_run(messages: int, size: int, sessions: int) -> float:
    d = Path(tempfile.mkdtemp(prefix="bench-relay-postfix-"))
    d.chmod(0o755)
    port = free_port()
    try:
        for sub in ("etc", "spool", "data", "mail"):
            (d / sub).mkdir()
        import pwd

        pw = pwd.getpwnam("postfix")
        uid, gid = pw.pw_uid, pw.pw_gid
        (d / "etc" / "main.cf").write_text(POSTFIX_MAIN.format(d=d, uid=uid, gid=gid))
        master = Path("/etc/postfix/master.cf").read_text().splitlines()
        master = [f"127.0.0.1:{port} inet  n       -       y       -       -       smtpd"
                  if line.startswith("smtp      inet") else line for line in master]
        (d / "etc" / "master.cf").write_text("\n".join(master) + "\n")
        etc = str(d / "etc")
        setup = subprocess.run(["postfix", "-c", etc, "set-permissions", "create-missing"],
                               capture_output=True, text=True, check=False)
        if setup.returncode != 0:
            raise RuntimeError(f"postfix set-permissions: {setup.stdout.strip()}")
        shutil.chown(d / "data", user="postfix")
        shutil.chown(d / "mail", user="postfix", group=gid)
        proc = subprocess.Popen(["postfix", "-c", etc, "start-fg"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                with contextlib.suppress(OSError):
                    import socket

                    socket.create_connection(("127.0.0.1", port), 1).close()
                    break
                time.sleep(0.1)
            new = d / "mail" / "user" / "Maildir" / "new"
            start = time.perf_counter()
            subprocess.run(["smtp-source", "-s", str(sessions), "-m", str(messages), "-l",
                            str(size), "-d", "-f", "bench@sender.test", "-t",
                            "user@bench.test", "-M", "client.bench.test",
                            f"127.0.0.1:{port}"], check=True, capture_output=True)
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                if new.is_dir() and len(os.listdir(new)) >= messages:
                    break
                time.sleep(0.01)
            else:
                raise RuntimeError("Postfix did not deliver every message")
            return messages / (time.perf_counter() - start)
        finally:
            subprocess.run(["postfix", "-c", etc, "stop"], capture_output=True, check=False)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(15)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--engine", default="sqlite", choices=("sqlite", "postgresql"))
    ap.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/test")
    ap.add_argument("--no-postfix", action="store_true")
    args = ap.parse_args()
    rows: list[tuple[str, float, str]] = []
    for label, remote in (("gateway relay, local", False), ("gateway relay, remote", True)):
        with tempfile.TemporaryDirectory(prefix="bench-relay-") as tmp, sink() as (port, _):
            url = f"sqlite:///{tmp}/store.db"
            if args.engine == "postgresql":
                import uuid

                import psycopg

                schema = f"bench_{uuid.uuid4().hex[:12]}"
                with psycopg.connect(args.pg_url, autocommit=True) as conn:
                    conn.execute(f"CREATE SCHEMA {schema}")
                url = f"{args.pg_url}?options=-csearch_path%3D{schema}"
            rate, lat = asyncio.run(gateway_run(url, args.messages, args.size,
                                                args.sessions, port if remote else None))
            rows.append((label, rate, f"latency median {statistics.median(lat) * 1000:.0f} ms, "
                                      f"p99 {_pct(lat, 0.99) * 1000:.0f} ms"))
    if not args.no_postfix and shutil.which("postfix") and shutil.which("smtp-source"):
        rows.append(("postfix smtp -> maildir", postfix_run(args.messages, args.size,
                                                            args.sessions), ""))
    print(f"accepted-to-delivered, {args.messages} messages x {args.size} octets, "
          f"{args.sessions} concurrent sessions, store {args.engine}")
    for label, rate, extra in rows:
        print(f"  {label:<26} {rate:>8.1f} msg/s  {extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
