"""Delivery throughput: deliveries/s with N concurrent deliverers on each engine.

    .venv/bin/python bench/bench_delivery.py [--messages 400] [--concurrency 1,8,32]
        [--pg postgresql://postgres@127.0.0.1:5432/test] [--size 4096]

Each run uses a fresh store (a temporary SQLite file; a fresh PostgreSQL schema dropped
afterwards) with 10 mailboxes, and delivers distinct messages of ``--size`` octets to
one mailbox each. Printed per run: deliveries/s, commits, and mean jobs per commit
(group commit at work on SQLite). Every commit is durable (SQLite synchronous=FULL,
PostgreSQL synchronous_commit=on), so the figures are bounded by fsync latency.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.store import Store, open_store


def body(n: int, size: int) -> bytes:
    head = b"From: bench@example.test\r\nTo: u@example.test\r\nSubject: bench %d\r\n\r\n" % n
    return head + (b"x" * 76 + b"\r\n") * max(1, (size - len(head)) // 78)


async def run(store: Store, messages: int, concurrency: int, size: int) -> None:
    boxes = [await store.org.create_mailbox(name=f"b{uuid.uuid4().hex[:8]}",
                                            primary_smtp_address=f"b{i}-{uuid.uuid4().hex[:8]}"
                                                                 f"@example.test")
             for i in range(10)]
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(messages):
        queue.put_nowait(n)

    async def worker() -> None:
        while True:
            try:
                n = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            d = store.begin_delivery()
            d.add_recipient(boxes[n % len(boxes)].id)
            await d.write(body(n, size))
            await d.commit()

    commits0, jobs0 = store.stats.commits, store.stats.write_jobs
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    commits = store.stats.commits - commits0
    jobs = store.stats.write_jobs - jobs0
    print(f"  concurrency {concurrency:>3}: {messages / elapsed:8.1f} deliveries/s  "
          f"({messages} in {elapsed:.2f} s, {commits} commits, "
          f"{jobs / max(commits, 1):.1f} jobs/commit)")


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--messages", type=int, default=400)
    ap.add_argument("--concurrency", default="1,8,32")
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test",
                    help="PostgreSQL URL ('' to skip)")
    args = ap.parse_args()
    levels = [int(x) for x in args.concurrency.split(",")]

    print(f"SQLite (WAL, synchronous=FULL, group commit), {args.size}-octet messages")
    with tempfile.TemporaryDirectory() as tmp:
        for level in levels:
            store = await open_store(f"sqlite:///{tmp}/bench-{level}.db")
            try:
                await run(store, args.messages, level, args.size)
            finally:
                await store.close()

    if args.pg:
        import psycopg

        print(f"PostgreSQL (synchronous_commit=on), {args.size}-octet messages")
        try:
            admin = psycopg.connect(args.pg, autocommit=True, connect_timeout=5)
        except psycopg.Error as exc:
            print(f"  skipped: {exc}")
            return 0
        with admin:
            for level in levels:
                schema = f"bench_{uuid.uuid4().hex[:12]}"
                admin.execute(f"CREATE SCHEMA {schema}")
                sep = "&" if "?" in args.pg else "?"
                store = await open_store(f"{args.pg}{sep}options=-csearch_path%3D{schema}")
                try:
                    await run(store, args.messages, level, args.size)
                finally:
                    await store.close()
                    admin.execute(f"DROP SCHEMA {schema} CASCADE")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
