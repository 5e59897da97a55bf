"""SMTP acceptance throughput: the gateway beside Postfix, driven by the same client.

    .venv/bin/python bench/bench_smtp.py [--messages 2000] [--sizes 2048,102400]
        [--sessions 1,20] [--rounds 2] [--workers 1,2]

Both servers run on loopback ports chosen here, in temporary directories, started by
this script and stopped after it:

* the gateway: ``gateway serve`` with a fresh SQLite store, the default connectors
  (full receive-connector policy: connector selection, rights, recipient lookup,
  protocol log Verbose on "Default Frontend") and durable acceptance: every message is
  committed to the recipient's mailbox (SQLite WAL, synchronous=FULL, fsync) before
  ``250``;
* Postfix (Debian ``postfix``): a private configuration directory, ``smtpd`` on one
  loopback port, every transport ``discard`` (the queue file is still fsynced before
  ``250``), run with ``postfix start-fg`` and stopped with ``postfix stop``.

Postfix's ``smtp-source`` drives both (``-d``: several messages per session), one
interleaved run per (size, sessions) case and round. Printed: messages per second for
each server and the ratio gateway / Postfix. Needs root (Postfix) and the Debian
packages ``postfix`` (``smtp-source`` is part of it).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
from benchlib import free_port, gateway_node, wait_listeners, wait_port  # noqa: E402

PYTHON = ROOT / ".venv" / "bin" / "python"


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
default_transport = discard
local_transport = discard
relay_transport = discard
alias_maps =
alias_database =
smtpd_recipient_restrictions = permit_mynetworks, reject
smtputf8_enable = no
maillog_file = /dev/stdout
default_process_limit = 200
"""


@contextlib.contextmanager
def postfix(port: int) -> Iterator[None]:
    d = Path(tempfile.mkdtemp(prefix="bench-postfix-"))
    d.chmod(0o755)  # Postfix's unprivileged daemons must reach the queue
    try:
        (d / "etc").mkdir()
        (d / "spool").mkdir()
        (d / "data").mkdir()
        (d / "etc" / "main.cf").write_text(POSTFIX_MAIN.format(d=d))
        master = Path("/etc/postfix/master.cf").read_text().splitlines()
        master = [f"127.0.0.1:{port} inet  n       -       y       -       -       smtpd"
                  if line.startswith("smtp      inet") else line for line in master]
        (d / "etc" / "master.cf").write_text("\n".join(master) + "\n")
        etc = str(d / "etc")
        subprocess.run(["postfix", "-c", etc, "set-permissions", "create-missing"],
                       check=True, capture_output=True)
        shutil.chown(d / "data", user="postfix")
        log = open(d / "postfix.log", "wb")
        proc = subprocess.Popen(["postfix", "-c", etc, "start-fg"], stdout=log,
                                stderr=subprocess.STDOUT)
        try:
            wait_port(port)
            yield
        finally:
            subprocess.run(["postfix", "-c", etc, "stop"], capture_output=True, check=False)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()
    finally:
        shutil.rmtree(d, ignore_errors=True)


@contextlib.contextmanager
def gateway(port: int, workers: int) -> Iterator[str]:
    """A gateway node whose ``workers`` SMTP processes all listen; yields the local
    recipient address. (Connections made before a worker has bound all go to the
    others, and smtp-source keeps its sessions for the whole run.)"""
    with gateway_node({"smtp": port}, env={"GATEWAY_SMTP_WORKERS": str(workers)}):
        wait_listeners(port, workers)
        yield "admin@bench.test"


def drive(port: int, messages: int, size: int, sessions: int, rcpt: str) -> float:
    """Messages per second accepted by the server on ``port`` (smtp-source)."""
    start = time.perf_counter()
    result = subprocess.run(
        ["smtp-source", "-s", str(sessions), "-m", str(messages), "-l", str(size), "-d",
         "-f", "bench@sender.test", "-t", rcpt, "-M", "client.bench.test",
         f"127.0.0.1:{port}"], capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"smtp-source failed: {result.stderr.strip()}")
    return messages / elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--sizes", default="2048,102400")
    ap.add_argument("--sessions", default="1,20")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--workers", default="0",
                    help="gateway SMTP processes, a comma list: one node per value, all "
                         "measured in the same interleaved run (0: one per CPU)")
    args = ap.parse_args()
    if shutil.which("smtp-source") is None or shutil.which("postfix") is None:
        print("needs the Debian package postfix (smtp-source, postfix)", file=sys.stderr)
        return 2
    workers = [int(w) or os.cpu_count() or 1 for w in args.workers.split(",")]
    sizes = [int(s) for s in args.sizes.split(",")]
    sessions = [int(s) for s in args.sessions.split(",")]
    pf_port = free_port()
    gw_ports = {w: free_port() for w in workers}
    names = {w: f"gw x{w}" for w in workers}
    results: dict[tuple[int, int], dict[str, list[float]]] = {}
    with contextlib.ExitStack() as stack:
        stack.enter_context(postfix(pf_port))
        rcpt = ""
        for w, port in gw_ports.items():
            rcpt = stack.enter_context(gateway(port, w))
            drive(port, 50, 2048, 4, rcpt)  # warm up (imports, caches, hash runner)
        drive(pf_port, 50, 2048, 4, "discard@sink.test")
        for _round in range(args.rounds):
            for size in sizes:
                for s in sessions:
                    n = args.messages if size <= 16384 else max(200, args.messages // 4)
                    r = results.setdefault((size, s), {})
                    r.setdefault("postfix", []).append(
                        drive(pf_port, n, size, s, "discard@sink.test"))
                    for w, port in gw_ports.items():
                        r.setdefault(names[w], []).append(drive(port, n, size, s, rcpt))
    print(f"SMTP acceptance, messages/s (best of {args.rounds} interleaved rounds; "
          f"gateway 'gw xN': N SMTP processes, SQLite, durable delivery; "
          f"Postfix: discard transport, fsynced queue)")
    header = f"{'size':>8} {'sessions':>8} {'postfix':>10}"
    for w in workers:
        header += f" {names[w]:>10} {'ratio':>6}"
    print(header)
    for (size, s), r in sorted(results.items()):
        pf = max(r["postfix"])
        line = f"{size:>8} {s:>8} {pf:>10.1f}"
        for w in workers:
            gw = max(r[names[w]])
            line += f" {gw:>10.1f} {gw / pf:>6.2f}"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
