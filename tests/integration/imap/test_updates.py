"""Untagged updates between sessions (RFC 3501 §7.4.1, RFC 9051 §7.5.1) and IDLE
(RFC 2177) woken by the store's change feed; CONDSTORE and QRESYNC (RFC 7162)."""

from __future__ import annotations

import asyncio

import aioimaplib
import pytest

from tests.integration.imap.conftest import PASSWORD, USER, Server, message
from tests.integration.imap.rawclient import Client


async def test_exists_expunge_and_flags_reach_other_session(imap_server: Server) -> None:
    for i in range(3):
        await imap_server.deliver(message(f"m{i}"))
    a = await Client.open(imap_server)
    b = await Client.open(imap_server)
    await a.cmd("SELECT INBOX")
    await b.cmd("SELECT INBOX")
    await imap_server.deliver(message("new"))
    out = await a.cmd("NOOP")
    assert b"* 4 EXISTS\r\n" in out
    await b.cmd("STORE 1 +FLAGS (\\Deleted \\Flagged)")
    await b.cmd("EXPUNGE")
    # FETCH must not carry the EXPUNGE (RFC 3501 §7.4.1); the flag change may come
    out = await a.cmd("FETCH 2 (UID)")
    assert not any(b"EXPUNGE" in line for line in out)
    assert b"* 2 FETCH (UID 2)\r\n" in out
    out = await a.cmd("NOOP")
    assert b"* 1 EXPUNGE\r\n" in out
    out = await a.cmd("FETCH 1:* (UID)")
    assert [line for line in out if line.startswith(b"* ")] == [
        b"* 1 FETCH (UID 2)\r\n", b"* 2 FETCH (UID 3)\r\n", b"* 3 FETCH (UID 4)\r\n"]
    await b.cmd("UID STORE 3 +FLAGS (\\Seen)")
    out = await a.cmd("NOOP")
    assert b"* 2 FETCH (UID 3 FLAGS (\\Seen))\r\n" in out
    await a.close()
    await b.close()


async def test_idle_is_woken_by_delivery_aioimaplib(imap_server: Server) -> None:
    await imap_server.deliver(message("first"))
    client = aioimaplib.IMAP4(host=imap_server.host, port=imap_server.port, timeout=10)
    await client.wait_hello_from_server()
    await client.login(USER, PASSWORD)
    await client.select("INBOX")
    idle = await client.idle_start(timeout=10)
    await asyncio.sleep(0.2)
    await imap_server.deliver(message("second"))
    pushed = await asyncio.wait_for(client.wait_server_push(), 10)
    client.idle_done()
    await asyncio.wait_for(idle, 10)
    assert any(b"2 EXISTS" in (p if isinstance(p, bytes) else str(p).encode())
               for p in pushed), pushed
    await client.logout()


async def test_idle_sees_expunge_from_other_session(imap_server: Server) -> None:
    await imap_server.deliver(message("a"))
    await imap_server.deliver(message("b"))
    a = await Client.open(imap_server)
    b = await Client.open(imap_server)
    await a.cmd("SELECT INBOX")
    await b.cmd("SELECT INBOX")
    await a.send(b"i1 IDLE\r\n")
    assert (await a.response()).startswith(b"+ ")
    await b.cmd("UID EXPUNGE 1")  # not \Deleted: UID EXPUNGE only removes \Deleted ones
    await b.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)")
    await b.cmd("UID EXPUNGE 1")
    lines = []
    while True:
        line = await a.response()
        lines.append(line)
        if line == b"* 1 EXPUNGE\r\n":
            break
    await a.send(b"DONE\r\n")
    assert (await a.response()).startswith(b"i1 OK")
    await a.close()
    await b.close()


async def test_condstore_unchangedsince_and_changedsince(imap_server: Server) -> None:
    for i in range(3):
        await imap_server.deliver(message(f"m{i}"))
    c = await Client.open(imap_server)
    out = await c.cmd("SELECT INBOX (CONDSTORE)")
    assert any(b"[HIGHESTMODSEQ " in line for line in out)
    out = await c.cmd("FETCH 1:* (MODSEQ)")
    modseqs = [int(line.split(b"MODSEQ (")[1].split(b")")[0]) for line in out[:-1]]
    base = max(modseqs)
    out = await c.cmd(f"STORE 1 (UNCHANGEDSINCE {base}) +FLAGS (\\Flagged)")
    assert out[-1].split(b" ")[1] == b"OK" and b"MODSEQ" in out[0]
    out = await c.cmd(f"STORE 1:2 (UNCHANGEDSINCE {base}) +FLAGS (\\Answered)")
    assert b"[MODIFIED 1]" in out[-1], out
    out = await c.cmd(f"FETCH 1:* (FLAGS) (CHANGEDSINCE {base})")
    fetched = [line for line in out if line.startswith(b"* ")]
    assert len(fetched) == 2 and all(b"MODSEQ" in line for line in fetched)
    out = await c.cmd(f"SEARCH MODSEQ {base + 1}")
    assert out[0].startswith(b"* SEARCH 1 2 (MODSEQ ")
    await c.close()


async def test_qresync_select_reports_vanished(imap_server: Server) -> None:
    for i in range(4):
        await imap_server.deliver(message(f"m{i}"))
    c = await Client.open(imap_server)
    await c.cmd("ENABLE QRESYNC")
    out = await c.cmd("SELECT INBOX")
    uidvalidity = next(line for line in out if b"UIDVALIDITY" in line).split(b" ")[3][:-1]
    modseq = next(line for line in out if b"HIGHESTMODSEQ" in line).split(b" ")[3][:-1]
    await c.cmd("STORE 2 +FLAGS (\\Deleted)")
    out = await c.cmd("EXPUNGE")
    assert b"* VANISHED 2\r\n" in out
    await c.cmd("STORE 1 +FLAGS (\\Seen)")
    await c.cmd("UNSELECT")
    out = await c.cmd(f"SELECT INBOX (QRESYNC ({int(uidvalidity)} {int(modseq)}))")
    assert b"* VANISHED (EARLIER) 2\r\n" in out
    assert any(b"UID 1 FLAGS (\\Seen) MODSEQ" in line for line in out)
    await c.close()


@pytest.mark.slow
async def test_large_folder_snapshot_cache_follows_changes(imap_server: Server) -> None:
    folder = await imap_server.store.mail.get_special_folder(imap_server.mailbox_id, "inbox")
    raw = message("bulk")
    await asyncio.gather(*(imap_server.store.mail.append(imap_server.mailbox_id, folder.id,
                                                         raw) for _ in range(300)))
    a = await Client.open(imap_server)
    b = await Client.open(imap_server)
    out = await a.cmd("SELECT INBOX")
    assert b"* 300 EXISTS\r\n" in out
    first = await a.cmd("FETCH 1:* (UID FLAGS)")
    assert len(first) == 301 and first[0] == b"* 1 FETCH (UID 1 FLAGS ())\r\n"
    assert (await a.cmd("FETCH 1:* (UID FLAGS)"))[:-1] == first[:-1]  # cached render
    await b.cmd("SELECT INBOX")
    await b.cmd("STORE 7 +FLAGS.SILENT (\\Answered)")
    out = await a.cmd("NOOP")
    assert b"* 7 FETCH (UID 7 FLAGS (\\Answered))\r\n" in out
    out = await a.cmd("FETCH 1:* (UID FLAGS)")
    assert out[6] == b"* 7 FETCH (UID 7 FLAGS (\\Answered))\r\n"
    out = await a.cmd("FETCH 5:8 (FLAGS)")
    assert out[:-1] == [b"* 5 FETCH (FLAGS ())\r\n", b"* 6 FETCH (FLAGS ())\r\n",
                        b"* 7 FETCH (FLAGS (\\Answered))\r\n", b"* 8 FETCH (FLAGS ())\r\n"]
    await b.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)")
    await b.cmd("EXPUNGE")
    await imap_server.deliver(message("late"))
    out = await a.cmd("UID FETCH 300:* (UID FLAGS)")  # on the view the client knows;
    assert out[0] == b"* 300 FETCH (UID 300 FLAGS ())\r\n"  # then the updates follow
    assert out[1:3] == [b"* 1 EXPUNGE\r\n", b"* 300 EXISTS\r\n"]
    out = await a.cmd("FETCH 299:* (UID FLAGS)")
    assert out[:-1] == [b"* 299 FETCH (UID 300 FLAGS ())\r\n",
                        b"* 300 FETCH (UID 301 FLAGS ())\r\n"]
    await a.close()
    await b.close()


async def test_rename_and_delete_of_the_selected_folder(imap_server: Server) -> None:
    a = await Client.open(imap_server)
    b = await Client.open(imap_server)
    await a.cmd("CREATE Projects")
    await a.append("Projects", message("p"))
    await a.cmd("SELECT Projects")
    out = await b.cmd("RENAME Projects Archive")
    assert out[-1].split(b" ")[1] == b"OK"
    out = await a.cmd("FETCH 1 (UID)")  # a rename keeps the selection working
    assert out[0] == b"* 1 FETCH (UID 1)\r\n"
    assert b"[TRYCREATE]" in (await a.cmd("COPY 1 Nowhere"))[-1]
    assert b"[CANNOT]" in (await a.cmd("MOVE 1 Archive"))[-1]
    await b.cmd("DELETE Archive")
    await a.send(b"n1 NOOP\r\n")
    assert (await a.response()).startswith(b"* BYE")  # the selected folder is gone
    assert await a.response() == b""
    await a.close()
    await b.close()
