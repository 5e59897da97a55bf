"""Mailbox management (modified UTF-7 names, hierarchy, LIST-EXTENDED, LIST-STATUS,
SPECIAL-USE, subscriptions), MULTIAPPEND, and SEARCH criteria including ESEARCH and
SEARCHRES, over the wire."""

from __future__ import annotations

import time
from typing import Any

from tests.integration.imap.conftest import Server, message
from tests.integration.imap.rawclient import Client


def ok(out: list[bytes]) -> bool:
    return out[-1].split(b" ")[1] == b"OK"


async def test_mailbox_names_and_hierarchy(imap_server: Server) -> None:
    c = await Client.open(imap_server)
    assert ok(await c.cmd("CREATE Caf&AOk-/Men&APw-/"))  # "Café/Menü", trailing delimiter
    out = await c.cmd('LIST "" "Caf&AOk-*"')
    assert out[:-1] == [b'* LIST (\\HasChildren) "/" Caf&AOk-\r\n',
                        b'* LIST (\\HasNoChildren) "/" Caf&AOk-/Men&APw-\r\n']
    assert (await imap_server.store.mail.find_folder(imap_server.mailbox_id, "Café/Menü"))
    out = await c.cmd('LIST "" %')
    names = b"".join(out)
    assert b'"/" INBOX\r\n' in names and b"Men&APw-" not in names
    assert b'(\\HasNoChildren \\Trash) "/" "Deleted Items"' in names
    assert not ok(await c.cmd("CREATE Caf&AOk-"))  # exists
    assert b"[ALREADYEXISTS]" in (await c.cmd("CREATE INBOX"))[-1]
    assert b"BAD" in (await c.cmd("CREATE Bad&Name"))[-1]  # malformed modified UTF-7
    assert b"[HASCHILDREN]" in (await c.cmd("DELETE Caf&AOk-"))[-1]
    assert ok(await c.cmd("RENAME Caf&AOk-/Men&APw- Archive"))
    assert b"[CANNOT]" in (await c.cmd("DELETE INBOX"))[-1]
    assert b"[CANNOT]" in (await c.cmd('RENAME "Sent Items" Other'))[-1]
    assert b"[NONEXISTENT]" in (await c.cmd("SELECT Nowhere"))[-1]
    assert ok(await c.cmd("CREATE INBOX/Sub"))
    out = await c.cmd('LIST "" INBOX*')
    assert b'* LIST (\\HasChildren) "/" INBOX\r\n' in out
    assert b'* LIST (\\HasNoChildren) "/" INBOX/Sub\r\n' in out
    assert ok(await c.cmd("SUBSCRIBE Archive"))
    out = await c.cmd('LSUB "" *')
    assert b'* LSUB () "/" Archive\r\n' in out
    out = await c.cmd('LIST (SUBSCRIBED) "" * RETURN (CHILDREN)')
    assert any(b"Archive" in line and b"\\Subscribed" in line for line in out)
    out = await c.cmd('LIST (SPECIAL-USE) "" *')
    assert len(out) == 5  # Drafts, Sent, Trash, Junk + tagged
    out = await c.cmd('LIST "" (INBOX Archive) RETURN (STATUS (MESSAGES UIDNEXT))')
    assert b"* STATUS INBOX (MESSAGES 0 UIDNEXT 1)\r\n" in out
    out = await c.cmd('LIST "" ""')
    assert out[0] == b'* LIST (\\Noselect) "/" ""\r\n'
    assert ok(await c.cmd("DELETE Archive"))
    await c.close()


async def test_multiappend_and_status(imap_server: Server) -> None:
    c = await Client.open(imap_server)
    m1, m2 = message("one"), message("two")
    await c.send(b'a1 APPEND INBOX (\\Seen) "14-Jul-2023 02:44:25 -0700" {%d+}\r\n' % len(m1)
                 + m1 + b" {%d+}\r\n" % len(m2) + m2 + b"\r\n")
    line = await c.response()
    assert line.startswith(b"a1 OK [APPENDUID ") and line.split(b" ")[4] == b"1:2]", line
    out = await c.cmd("STATUS INBOX (MESSAGES UNSEEN UIDNEXT SIZE DELETED HIGHESTMODSEQ)")
    assert out[0].startswith(b"* STATUS INBOX (MESSAGES 2 UNSEEN 1 UIDNEXT 3 SIZE ")
    await c.cmd("SELECT INBOX")
    out = await c.cmd("FETCH 1 (INTERNALDATE FLAGS)")
    assert b'INTERNALDATE "14-Jul-2023 09:44:25 +0000"' in out[0] and b"\\Seen" in out[0]
    assert b"[TRYCREATE]" in (await c.append("Nowhere", m1))
    assert b"[TOOBIG]" in (await c.cmd(b"APPEND INBOX {999999999}"))[-1]
    await c.close()


async def test_search_criteria(imap_server: Server) -> None:
    c = await Client.open(imap_server)
    now = time.time()
    big = message("Big one", "x" * 5000 + "\r\n", extra="X-Tag: alpha\r\n")
    await c.append("INBOX", message("Café résumé", "plain text body\r\n"), "(\\Seen)")
    await c.append("INBOX", big, "(\\Flagged $Work)")
    await c.append("INBOX", message("Third", "another body\r\n", sender="carol@x.test"),
                   '(\\Deleted) "01-Jan-2020 10:00:00 +0000"')
    await c.cmd("SELECT INBOX")

    async def search(criteria: str | bytes) -> bytes:
        out = await c.cmd(criteria if isinstance(criteria, bytes) else "SEARCH " + criteria)
        assert ok(out), out
        return next(line for line in out if line.startswith((b"* SEARCH", b"* ESEARCH")))

    assert await search("ALL") == b"* SEARCH 1 2 3\r\n"
    assert await search("SEEN") == b"* SEARCH 1\r\n"
    assert await search("UNSEEN UNDELETED") == b"* SEARCH 2\r\n"
    assert await search("KEYWORD $work") == b"* SEARCH 2\r\n"
    assert await search("UNKEYWORD $Work") == b"* SEARCH 1 3\r\n"
    assert await search("LARGER 4000") == b"* SEARCH 2\r\n"
    assert await search("SMALLER 4000 NOT DELETED") == b"* SEARCH 1\r\n"
    assert await search("BEFORE 2-Jan-2020") == b"* SEARCH 3\r\n"
    assert await search("ON 1-Jan-2020") == b"* SEARCH 3\r\n"
    day = time.strftime("%d-%b-%Y", time.gmtime(now))
    assert await search(f"SINCE {day}") == b"* SEARCH 1 2\r\n"
    assert await search("SENTON 7-Feb-1994") == b"* SEARCH 1 2 3\r\n"
    assert await search("SENTBEFORE 7-Feb-1994") == b"* SEARCH\r\n"
    assert await search("SENTSINCE 8-Feb-1994") == b"* SEARCH\r\n"
    assert await search("FROM carol") == b"* SEARCH 3\r\n"
    assert await search("TO alice@EXAMPLE.test") == b"* SEARCH 1 2 3\r\n"
    assert await search("HEADER X-Tag alpha") == b"* SEARCH 2\r\n"
    assert await search('HEADER X-Tag ""') == b"* SEARCH 2\r\n"
    assert await search("BODY ANOTHER") == b"* SEARCH 3\r\n"
    assert await search("TEXT third") == b"* SEARCH 3\r\n"
    assert await search("CC nobody") == b"* SEARCH\r\n"
    assert await search("BCC nobody") == b"* SEARCH\r\n"
    word = "résumé".encode()
    assert await search(b"SEARCH CHARSET UTF-8 SUBJECT {%d+}\r\n" % len(word) + word) \
        == b"* SEARCH 1\r\n"
    assert b"[BADCHARSET" in (await c.cmd("SEARCH CHARSET KOI8-R ALL"))[-1]
    assert await search("OR 1 3") == b"* SEARCH 1 3\r\n"
    assert await search("2:*") == b"* SEARCH 2 3\r\n"
    assert await search("NOT (1 SEEN)") == b"* SEARCH 2 3\r\n"
    assert await search("UID 3 ANSWERED") == b"* SEARCH\r\n"
    assert await search("UNANSWERED UNDRAFT UNFLAGGED DRAFT") == b"* SEARCH\r\n"
    assert await search("NEW") == b"* SEARCH\r\n" and await search("RECENT") == b"* SEARCH\r\n"
    assert await search("OLD FLAGGED") == b"* SEARCH 2\r\n"
    assert await search(b"UID SEARCH 2:3 ANSWERED") == b"* SEARCH\r\n"
    assert await search(b"UID SEARCH ALL") == b"* SEARCH 1 2 3\r\n"
    assert (await search("RETURN (MIN MAX COUNT) ALL")).endswith(b"MIN 1 MAX 3 COUNT 3\r\n")
    assert (await search("RETURN () UNDELETED")).endswith(b"ALL 1:2\r\n")
    out = await c.cmd("SEARCH RETURN (SAVE) FLAGGED")
    assert ok(out) and not any(line.startswith(b"* ") for line in out[:-1])
    out = await c.cmd("FETCH $ (UID)")
    assert out[0] == b"* 2 FETCH (UID 2)\r\n"
    assert b"BAD" in (await c.cmd("SEARCH FROBNICATE"))[-1]
    await c.close()


async def test_id_namespace_enable_check_close(imap_server: Server) -> None:
    await imap_server.deliver(message("x"), flags=("\\Deleted",))
    c = await Client.open(imap_server)
    out = await c.cmd('ID ("name" "test" "version" NIL)')
    assert out[0].startswith(b"* ID (")
    assert (await c.cmd("NAMESPACE"))[0] == b'* NAMESPACE (("" "/")) NIL NIL\r\n'
    assert (await c.cmd("ENABLE CONDSTORE X-UNKNOWN"))[0] == b"* ENABLED CONDSTORE\r\n"
    await c.cmd("EXAMINE INBOX")
    assert ok(await c.cmd("CHECK"))
    assert ok(await c.cmd("CLOSE"))  # read-only: nothing expunged
    folder = await imap_server.store.mail.get_special_folder(imap_server.mailbox_id, "inbox")
    assert (await imap_server.store.mail.get_folder(folder.id)).message_count == 1
    await c.cmd("SELECT INBOX")
    assert ok(await c.cmd("CLOSE"))  # read-write: \Deleted expunged silently
    assert (await imap_server.store.mail.get_folder(folder.id)).message_count == 0
    await c.close()


async def test_imap4rev2_when_enabled(imap_server: Server) -> None:
    await imap_server.deliver(message("r2"))
    c = await Client.open(imap_server)
    assert (await c.cmd("ENABLE IMAP4rev2"))[0] == b"* ENABLED IMAP4rev2\r\n"
    out = await c.cmd("SELECT INBOX")
    assert not any(b"RECENT" in line for line in out)
    assert b'* LIST () "/" INBOX\r\n' in out
    out = await c.cmd("SEARCH ALL")  # RFC 9051 §6.4.4: ESEARCH, not SEARCH
    assert out[0] == b'* ESEARCH (TAG "t4") ALL 1\r\n'
    out = await c.cmd("STATUS INBOX (MESSAGES DELETED SIZE)")
    assert out[0].startswith(b"* STATUS INBOX (MESSAGES 1 DELETED 0 SIZE ")
    await c.close()


async def test_multiappend_is_all_or_nothing(imap_server: Server, monkeypatch: Any) -> None:
    from gateway.errors import StoreUnavailable
    c = await Client.open(imap_server)
    m1, m2 = message("one"), message("two")
    twice = b" {%d+}\r\n" % len(m1) + m1 + b" (\\Bogus) {%d+}\r\n" % len(m2) + m2 + b"\r\n"
    await c.send(b"a1 APPEND INBOX" + twice)
    assert (await c.response()).startswith(b"a1 BAD")  # refused before storing anything
    real = imap_server.store.mail.append
    calls = 0

    async def failing_second(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise StoreUnavailable("disk gone")
        return await real(*args, **kwargs)
    monkeypatch.setattr(imap_server.store.mail, "append", failing_second)
    await c.send(b"a2 APPEND INBOX {%d+}\r\n" % len(m1) + m1 + b" {%d+}\r\n" % len(m2) + m2
                 + b"\r\n")
    assert (await c.response()).startswith(b"a2 NO [UNAVAILABLE]")
    folder = await imap_server.store.mail.get_special_folder(imap_server.mailbox_id, "inbox")
    assert (await imap_server.store.mail.get_folder(folder.id)).message_count == 0
    await c.close()
