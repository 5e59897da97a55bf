"""FETCH of ENVELOPE, BODYSTRUCTURE and BODY[section] over the wire against Dovecot 2.3's
answers for the whole MIME corpus (tests/data/mime: nested multiparts, encodings,
broken messages), plus BINARY, partial fetches and header field lists."""

from __future__ import annotations

import pytest

from tests.integration.imap.conftest import Server
from tests.integration.imap.rawclient import Client, fetch_items, make_reference
from tests.unit.mime.corpus import corpus_names, load
from tests.unit.mime.test_dovecot_parity import DEVIATIONS, REFERENCE


@pytest.mark.slow
async def test_corpus_fetch_matches_dovecot(imap_server: Server) -> None:
    c = await Client.open(imap_server)
    names = corpus_names()
    for name in names:
        line = await c.append("INBOX", load(name))
        assert b" OK " in line, (name, line)
    await c.cmd("SELECT INBOX")
    for uid, name in enumerate(names, 1):
        expected = REFERENCE[name]
        skipped = DEVIATIONS.get(name, (set(), ""))[0]
        sections = [s for s in expected["sections"] if f"section:{s}" not in skipped]
        items = " ".join(f"BODY.PEEK[{s}]" for s in sections)
        out = await c.cmd(f"UID FETCH {uid} (BODYSTRUCTURE ENVELOPE {items})")
        assert out[-1].split(b" ")[1] == b"OK", (name, out[-1])
        got = fetch_items(out[0])
        if "bodystructure" not in skipped:
            assert make_reference.text(got["BODYSTRUCTURE"]) == expected["bodystructure"], name
        if "envelope" not in skipped:
            assert make_reference.text(got["ENVELOPE"]) == expected["envelope"], name
        for s in sections:
            assert got[f"BODY[{s}]"] == expected["sections"][s].encode("latin-1"), (name, s)
    await c.close()


MULTI = (b"From: a@example.test\r\nSubject: parts\r\nMIME-Version: 1.0\r\n"
         b"Content-Type: multipart/mixed; boundary=XX\r\n\r\n"
         b"--XX\r\nContent-Type: text/plain; charset=utf-8\r\n"
         b"Content-Transfer-Encoding: quoted-printable\r\n\r\nCaf=C3=A9 au lait\r\n"
         b"--XX\r\nContent-Type: application/octet-stream\r\n"
         b"Content-Transfer-Encoding: base64\r\n\r\nAAECAwQ=\r\n"
         b"--XX\r\nContent-Type: application/x-odd\r\n"
         b"Content-Transfer-Encoding: x-uuencode\r\n\r\nbegin\r\n"
         b"--XX--\r\n")


async def test_binary_partial_and_header_fields(imap_server: Server) -> None:
    await imap_server.deliver(MULTI)
    c = await Client.open(imap_server)
    await c.cmd("SELECT INBOX")
    out = await c.cmd("FETCH 1 (BINARY.PEEK[1] BINARY.SIZE[2] BINARY.PEEK[2])")
    got = fetch_items(out[0])
    assert got["BINARY[1]"] == "Café au lait".encode()
    assert got["BINARY.SIZE[2]"] == 5
    assert got["BINARY[2]"] == b"\x00\x01\x02\x03\x04"
    assert b"~{5}" in out[0]  # literal8 for NUL octets (RFC 3516)
    out = await c.cmd("FETCH 1 (BINARY.PEEK[3])")
    assert out[-1].split(b" ")[1:3] == [b"NO", b"[UNKNOWN-CTE]"]
    out = await c.cmd("FETCH 1 (BODY.PEEK[]<0.4> BODY.PEEK[1]<4.100>)")
    got = fetch_items(out[0])
    assert got["BODY[]<0>"] == b"From"
    assert got["BODY[1]<4>"] == b"C3=A9 au lait"
    out = await c.cmd("FETCH 1 (BODY.PEEK[HEADER.FIELDS.NOT (From MIME-Version Content-Type)])")
    got = fetch_items(out[0])
    assert got["BODY[HEADER.FIELDS.NOT (FROM MIME-VERSION CONTENT-TYPE)]"] == \
        b"Subject: parts\r\n\r\n"
    out = await c.cmd("FETCH 1 (FLAGS)")
    assert b"\\Seen" not in out[0]  # every fetch above was a PEEK
    out = await c.cmd("FETCH 1 (BODY[2.MIME] RFC822.SIZE)")
    got = fetch_items(out[0])
    assert got["BODY[2.MIME]"].startswith(b"Content-Type: application/octet-stream")
    assert got["RFC822.SIZE"] == len(MULTI)
    assert "\\Seen" in str(got["FLAGS"])
    out = await c.cmd("FETCH 1 (BODY)")
    got = fetch_items(out[0])
    assert len(got["BODY"]) == 4 and got["BODY"][3] == b"mixed"  # no extension data
    out = await c.cmd("FETCH 1 FAST")
    assert set(fetch_items(out[0])) == {"FLAGS", "INTERNALDATE", "RFC822.SIZE"}
    await c.close()
