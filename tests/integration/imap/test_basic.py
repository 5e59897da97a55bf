"""Transcripts with imaplib: greeting, CAPABILITY, LOGIN, SELECT, FETCH, STORE, SEARCH,
COPY/MOVE, EXPUNGE, APPEND, LIST, STATUS, LOGOUT on both store engines."""

from __future__ import annotations

import asyncio
import imaplib
from typing import Any

from tests.integration.imap.conftest import PASSWORD, USER, Server, message


def connect(s: Server) -> imaplib.IMAP4:
    m = imaplib.IMAP4(s.host, s.port, timeout=10)
    return m


def login(s: Server) -> imaplib.IMAP4:
    m = connect(s)
    m.login(USER, PASSWORD)
    return m


async def run(fn: Any, *args: Any) -> Any:
    return await asyncio.to_thread(fn, *args)


async def test_capability_login_logout(imap_server: Server) -> None:
    def client() -> None:
        m = connect(imap_server)
        assert "IMAP4REV1" in m.capabilities
        assert "AUTH=PLAIN" in m.capabilities  # PlainTextLogin in this fixture
        typ, data = m.login(USER, PASSWORD)
        assert typ == "OK"
        typ, data = m.capability()
        caps = data[0].decode().split()
        assert "IDLE" in caps and "UIDPLUS" in caps and "MOVE" in caps
        assert m.logout()[0] == "BYE"
    await run(client)


async def test_wrong_password_is_refused(imap_server: Server) -> None:
    def client() -> str:
        m = connect(imap_server)
        try:
            m.login(USER, "wrong")
        except imaplib.IMAP4.error as exc:
            return str(exc)
        finally:
            m.shutdown()
        return "no error"
    assert "AUTHENTICATIONFAILED" in await run(client)


async def test_select_fetch_store_search(imap_server: Server) -> None:
    for i in range(3):
        await imap_server.deliver(message(f"Subject {i}", f"Body number {i}\r\n"))

    def client() -> None:
        m = login(imap_server)
        typ, data = m.select("INBOX")
        assert (typ, data) == ("OK", [b"3"])
        typ, data = m.fetch("1:*", "(UID FLAGS)")
        assert typ == "OK"
        assert data == [b"1 (UID 1 FLAGS ())", b"2 (UID 2 FLAGS ())", b"3 (UID 3 FLAGS ())"]
        typ, data = m.fetch("2", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert data[0][1] == b"Subject: Subject 1\r\n\r\n"
        typ, data = m.fetch("2", "(BODY[TEXT])")
        assert data[0][1] == b"Body number 1\r\n"
        assert b"\\Seen" in data[0][0] or b"\\Seen" in data[1]
        typ, data = m.search(None, "UNSEEN")
        assert data == [b"1 3"]
        typ, data = m.search(None, "SUBJECT", '"subject 2"')
        assert data == [b"3"]
        typ, data = m.search(None, "BODY", "number")
        assert data == [b"1 2 3"]
        typ, data = m.uid("SEARCH", "UID", "2:*")
        assert data == [b"2 3"]
        typ, data = m.store("1", "+FLAGS", "(\\Flagged)")
        assert data == [b"1 (FLAGS (\\Flagged))"]
        typ, data = m.search(None, "FLAGGED")
        assert data == [b"1"]
        typ, data = m.search(None, "OR", "FLAGGED", "SEEN")
        assert data == [b"1 2"]
        typ, data = m.search(None, "NOT", "SEEN", "NOT", "FLAGGED")
        assert data == [b"3"]
        typ, data = m.fetch("1", "(ENVELOPE)")
        assert b'"Subject 0"' in data[0] and b'(("Bob" NIL "bob" "example.test"))' in data[0]
        typ, data = m.fetch("1", "(BODYSTRUCTURE RFC822.SIZE INTERNALDATE)")
        assert b'("text" "plain" ("charset" "us-ascii")' in data[0].lower()
        m.logout()
    await run(client)


async def test_copy_move_expunge_append(imap_server: Server) -> None:
    for i in range(4):
        await imap_server.deliver(message(f"M{i}"))

    def client() -> None:
        m = login(imap_server)
        m.select("INBOX")
        typ, data = m.create("Work/2024")
        assert typ == "OK", data
        typ, data = m.copy("1:2", "Work/2024")
        assert typ == "OK" and b"COPYUID" in data[0], data
        typ, data = m._simple_command("MOVE", "3", '"Work/2024"')
        assert typ == "OK"
        assert m.untagged_responses.get("EXPUNGE") == [b"3"]
        m.untagged_responses.clear()
        m.store("1", "+FLAGS", "\\Deleted")
        typ, data = m.expunge()
        assert data == [b"1"]
        typ, data = m.status("Work/2024", "(MESSAGES UIDNEXT UNSEEN)")
        assert data == [b'Work/2024 (MESSAGES 3 UIDNEXT 4 UNSEEN 3)'], data
        typ, data = m.append("Work/2024", "(\\Seen)", None, message("Appended"))
        assert typ == "OK" and b"APPENDUID" in data[0]
        typ, data = m.list()
        names = b"\n".join(data)
        assert b'"/" INBOX' in names and b'"/" "Sent Items"' in names
        assert b"\\Sent" in names and b'(\\HasChildren) "/" Work' in names
        typ, data = m.select("Work/2024", readonly=True)
        assert data == [b"4"]
        typ, data = m.fetch("4", "(FLAGS BODY.PEEK[HEADER.FIELDS (Subject)])")
        assert b"\\Seen" in data[0][0] and b"Appended" in data[0][1]
        typ, data = m.store("1", "+FLAGS", "\\Deleted")
        assert typ == "NO"
        m.logout()
    await run(client)
