"""Durability: no acknowledged delivery is lost by ``kill -9`` (issue 2 item 4).

A child process delivers messages in a loop with several concurrent deliverers (so
SQLite group-commits them) and prints each UID as soon as ``commit()`` returns. The
test kills it with SIGKILL mid-stream, reopens the store and checks that every printed
message is there, with its content.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gateway.store import open_store

ROOT = Path(__file__).resolve().parents[2]

CHILD = r"""
import asyncio, sys
from gateway.store import open_store

async def deliverer(store, mailbox_id, worker):
    n = 0
    while True:
        n += 1
        raw = b"Subject: w%d n%d\r\n\r\n" % (worker, n) + b"body %d %d\r\n" % (worker, n) * 50
        d = store.begin_delivery()
        d.add_recipient(mailbox_id)
        await d.write(raw)
        res = await d.commit()
        print(res.recipients[0].uid, res.recipients[0].message_id, res.content_sha256,
              flush=True)

async def main():
    store = await open_store(sys.argv[1])
    print("ready", flush=True)
    await asyncio.gather(*(deliverer(store, int(sys.argv[2]), w) for w in range(8)))

asyncio.run(main())
"""


@pytest.mark.slow
async def test_kill_9_after_commit_loses_nothing(store_url):
    store = await open_store(store_url)
    mb = await store.org.create_mailbox(name="alice", primary_smtp_address="a@example.test")
    await store.close()

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", CHILD, store_url, str(mb.id)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    acknowledged: list[tuple[int, int, str]] = []
    try:
        assert proc.stdout is not None
        line = await asyncio.to_thread(proc.stdout.readline)
        assert line.strip() == b"ready", line + (proc.stderr.read() if proc.stderr else b"")
        deadline = time.monotonic() + 20
        while len(acknowledged) < 150 and time.monotonic() < deadline:
            line = await asyncio.to_thread(proc.stdout.readline)
            if not line:
                break
            uid, mid, sha = line.split()
            acknowledged.append((int(uid), int(mid), sha.decode()))
    finally:
        proc.send_signal(signal.SIGKILL)  # no chance to flush or close anything
        proc.wait(10)
    # Lines the child printed before dying but we had not read yet were acknowledged too.
    assert proc.stdout is not None
    for line in proc.stdout.read().splitlines():
        parts = line.split()
        if len(parts) == 3:
            acknowledged.append((int(parts[0]), int(parts[1]), parts[2].decode()))
    assert len(acknowledged) >= 20, "the child delivered too little to test anything"

    store = await open_store(store_url)
    try:
        inbox = await store.mail.get_special_folder(mb.id, "inbox")
        uids = set(await store.mail.list_uids(inbox.id))
        missing = [uid for uid, _mid, _sha in acknowledged if uid not in uids]
        assert not missing, f"acknowledged but lost after kill -9: {missing}"
        for _uid, mid, sha in acknowledged[-5:]:
            raw = await store.mail.read_content(mid)
            assert hashlib.sha256(raw).hexdigest() == sha
        assert inbox.message_count == len(uids) >= len(acknowledged)
    finally:
        await store.close()
