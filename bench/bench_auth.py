"""Authentication under load (issue 6 §8): event-loop stalls and the credential cache.

    .venv/bin/python bench/bench_auth.py [--clients 20] [--seconds 15]
        [--noop-interval 0.02] [--requests 400] [--store sqlite|postgresql://...]

Two ``gateway serve`` processes run from a temporary directory, on loopback ports
chosen here: one as shipped, and one whose credential cache is off (the launcher sets
``CredentialCache(ttl=0)`` before the node starts; nothing else differs), so every
login pays a full argon2id verification (RFC 9106 second option: 64 MiB, 3 passes).

1. ``noop latency under login load`` (uncached gateway): ``--clients`` IMAP
   connections each LOGIN + LOGOUT in a loop (a new connection per login, argon2id
   each time) while one more, already logged-in connection sends NOOP every
   ``--noop-interval`` seconds and times each reply. Target: NOOP p99 < 50 ms (hashing
   runs in the HashRunner's threads and never stalls the event loop).
2. ``Basic over HTTPS, cached vs uncached``: ``--requests`` sequential
   ``GET /auth/whoami`` with ``Authorization: Basic`` on one kept-alive TLS connection
   against each gateway; requests per second and the ratio (target >= 20x).

``--tcp-nodelay`` forces TCP_NODELAY on accepted sockets from outside. The listeners
set it themselves since this benchmark found it missing (every HTTP response, headers
and body written separately, waited ~40 ms for the client's delayed ACK: cached Basic
ran at 21 requests/s instead of 500); the switch stays for comparing builds.

Figures are printed, never asserted. IMAP runs without TLS
(``Set-ImapSettings -LoginType PlainTextLogin``) so the client's TLS work does not
blur the server's figures; the HTTPS probe uses the node's self-signed certificate.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import signal
import ssl
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
from benchlib import free_port, wait_port  # noqa: E402

USER = "bench@bench.test"
PASSWORD = "bench-secret-1"
CLIENT_USER = "client{}@bench.test"

#: Starts ``gateway serve``; {uncached} switches the credential cache off, {nodelay} sets
#: TCP_NODELAY on accepted sockets (see --tcp-nodelay).
LAUNCHER = """\
import sys
import asyncio.base_events, socket
import auth.cache, auth.service
_orig = auth.cache.CredentialCache
if {uncached}:
    auth.service.CredentialCache = lambda **kw: _orig(ttl=0)
if {nodelay}:
    asyncio.base_events._set_nodelay = lambda sock: sock.setsockopt(
        socket.IPPROTO_TCP, socket.TCP_NODELAY, 1) if sock.family in (
        socket.AF_INET, socket.AF_INET6) else None
from gateway.cli import main
sys.exit(main(sys.argv[1:]))
"""


async def fill(store_url: str, clients: int) -> None:
    from auth.passwords import hash_password
    from gateway.store import open_store

    store = await open_store(store_url)
    try:
        await store.org.create_accepted_domain("bench.test", "bench.test")
        pw = await asyncio.to_thread(hash_password, PASSWORD)
        await store.org.create_mailbox(name="bench", primary_smtp_address=USER,
                                       password_hash=pw)
        for i in range(clients):
            await store.org.create_mailbox(name=f"client{i}",
                                           primary_smtp_address=CLIENT_USER.format(i),
                                           password_hash=pw)
        await store.org.set_settings("imap", {"login_type": "PlainTextLogin",
                                              "max_connections_per_user": 100000})
    finally:
        await store.close()


@contextlib.contextmanager
def gateway(store: str, clients: int, *, cached: bool,
            nodelay: bool) -> Iterator[tuple[int, int]]:
    """A running gateway; yields (imap port, https port)."""
    d = Path(tempfile.mkdtemp(prefix="bench-auth-"))
    store_url = f"sqlite:///{d / 'gateway.db'}" if store == "sqlite" else store
    asyncio.run(fill(store_url, clients))
    imap, https = free_port(), free_port()
    config = d / "gateway.toml"
    config.write_text(f"""\
server_name = "gateway.bench.test"
data_dir = "{d / 'var'}"
store_url = "{store_url}"
[logging]
level = "warning"
[http]
health_bind = []
[bindings]
smtp = []
submission = []
submissions = []
imap = ["127.0.0.1:{imap}"]
imaps = []
pop3 = []
pop3s = []
https = ["127.0.0.1:{https}"]
""")
    args = ["--config", str(config), "serve"]
    cmd = [str(PYTHON), "-c", LAUNCHER.format(uncached=not cached, nodelay=nodelay), *args]
    log = open(d / "gateway.log", "wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        wait_port(imap)
        wait_port(https)
        yield imap, https
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        if store != "sqlite":
            print("note: the PostgreSQL store keeps the bench rows; use a scratch database")
        shutil.rmtree(d, ignore_errors=True)


# -- IMAP -------------------------------------------------------------------------------


class Imap:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer, self.tag = reader, writer, 0

    @classmethod
    async def open(cls, port: int) -> Imap:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await reader.readline()  # greeting
        return cls(reader, writer)

    async def command(self, text: str) -> bytes:
        self.tag += 1
        tag = f"a{self.tag}".encode()
        self.writer.write(tag + b" " + text.encode() + b"\r\n")
        await self.writer.drain()
        while True:
            line = await self.reader.readline()
            if not line:
                raise RuntimeError("server closed the connection")
            if line.startswith(tag + b" "):
                return line

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


async def login_loop(port: int, user: str, stop: asyncio.Event, counts: list[int]) -> None:
    while not stop.is_set():
        conn = await Imap.open(port)
        try:
            reply = await conn.command(f'LOGIN "{user}" "{PASSWORD}"')
            if b" OK" not in reply:
                raise RuntimeError(f"login failed: {reply!r}")
            counts[0] += 1
            await conn.command("LOGOUT")
        finally:
            await conn.close()


async def noop_under_load(port: int, clients: int, seconds: float,
                          interval: float) -> None:
    probe = await Imap.open(port)
    reply = await probe.command(f'LOGIN "{USER}" "{PASSWORD}"')
    assert b" OK" in reply, reply
    idle: list[float] = []
    for _ in range(20):  # baseline without load
        t0 = time.perf_counter()
        await probe.command("NOOP")
        idle.append(time.perf_counter() - t0)
        await asyncio.sleep(interval)
    stop = asyncio.Event()
    counts = [0]
    loaders = [asyncio.create_task(login_loop(port, CLIENT_USER.format(i), stop, counts))
               for i in range(clients)]
    await asyncio.sleep(1.0)  # let the load build up
    latencies: list[float] = []
    start, logins0 = time.perf_counter(), counts[0]
    while time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        await probe.command("NOOP")
        latencies.append(time.perf_counter() - t0)
        await asyncio.sleep(interval)
    elapsed = time.perf_counter() - start
    logins = counts[0] - logins0
    stop.set()
    await asyncio.gather(*loaders, return_exceptions=True)
    await probe.close()
    q = statistics.quantiles(latencies, n=100, method="inclusive")
    print(f"noop latency under login load ({clients} clients logging in, argon2id, "
          f"uncached): {logins / elapsed:.1f} logins/s")
    print(f"  NOOP idle median {statistics.median(idle) * 1000:.2f} ms; under load: "
          f"n={len(latencies)} median {statistics.median(latencies) * 1000:.2f} ms, "
          f"p99 {q[98] * 1000:.2f} ms, max {max(latencies) * 1000:.2f} ms "
          f"(target p99 < 50 ms)")


# -- HTTPS Basic ------------------------------------------------------------------------


def basic_requests(port: int, count: int) -> float:
    """Requests per second of sequential Basic GETs on one kept-alive connection."""
    import base64
    import http.client

    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the node's self-signed certificate
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=30)
    try:
        def one() -> None:
            conn.request("GET", "/auth/whoami", headers={"Authorization": "Basic " + token})
            reply = conn.getresponse()
            reply.read()
            if reply.status != 200:
                raise RuntimeError(f"GET /auth/whoami: {reply.status}")
        one()  # warm-up (fills the cache when there is one)
        t0 = time.perf_counter()
        for _ in range(count):
            one()
        return count / (time.perf_counter() - t0)
    finally:
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--noop-interval", type=float, default=0.02)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--store", default="sqlite")
    parser.add_argument("--tcp-nodelay", action="store_true",
                        help="force TCP_NODELAY on the gateway's accepted sockets "
                             "(the listeners already set it)")
    args = parser.parse_args()

    with gateway(args.store, args.clients, cached=False,
                 nodelay=args.tcp_nodelay) as (imap, https):
        asyncio.run(noop_under_load(imap, args.clients, args.seconds, args.noop_interval))
        uncached_count = max(10, args.requests // 20)
        uncached = basic_requests(https, uncached_count)
    with gateway(args.store, args.clients, cached=True,
                 nodelay=args.tcp_nodelay) as (_imap, https):
        cached = basic_requests(https, args.requests)
    print(f"Basic over HTTPS: cached {cached:.1f} req/s ({args.requests} requests), "
          f"uncached {uncached:.1f} req/s ({uncached_count} requests): "
          f"ratio {cached / uncached:.1f}x (target >= 20x)"
          f"{'; TCP_NODELAY forced' if args.tcp_nodelay else ''}")


if __name__ == "__main__":
    main()
