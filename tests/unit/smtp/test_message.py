"""Header work at end of data: hop count, Message-ID, header firewall, Received."""

from __future__ import annotations

from datetime import UTC, datetime

from protocols.smtp.message import (
    analyse_header,
    new_message_id,
    received_field,
    split_header,
    strip_fields,
)

MSG = (b"Received: from a by b; x\r\nreceived: from c\r\n by d; y\r\n"
       b"Message-ID:\r\n <id@x.test>\r\nSubject: Hello\r\n there\r\n"
       b"X-MS-Exchange-Organization-SCL: -1\r\nX-MS-Exchange-Forest-Foo: 1\r\n"
       b" continued\r\nTo: a@b\r\n\r\nbody\r\nReceived: not a header\r\n")


def test_analyse_header() -> None:
    facts = analyse_header(MSG)
    assert facts.received_count == 2
    assert facts.message_id == "<id@x.test>"
    assert facts.subject == "Hello there"
    assert MSG[facts.header_end:] == b"body\r\nReceived: not a header\r\n"


def test_header_only_and_empty_header() -> None:
    assert split_header(b"Subject: x\r\n") == len(b"Subject: x\r\n")
    assert split_header(b"\r\nbody") == 2
    assert analyse_header(b"").message_id is None


def test_strip_fields_removes_folded_fields() -> None:
    facts = analyse_header(MSG)
    out = strip_fields(MSG, facts.header_end,
                       frozenset({"x-ms-exchange-organization-", "x-ms-exchange-forest-"}))
    assert b"X-MS-Exchange" not in out and b"continued" not in out
    assert out.endswith(b"To: a@b\r\n\r\nbody\r\nReceived: not a header\r\n")
    assert strip_fields(MSG, facts.header_end, frozenset()) is MSG
    clean = b"Subject: x\r\n\r\nX-MS-Exchange-Organization-SCL: in body\r\n"
    assert strip_fields(clean, analyse_header(clean).header_end,
                        frozenset({"x-ms-exchange-organization-"})) == clean


def test_received_field() -> None:
    field = received_field(helo="client\r\nInjected: x", remote_ip="192.0.2.1",
                           fqdn="mail1.example.test", connector="Client Frontend",
                           esmtp=True, tls="TLSv1.3 TLS_AES_256_GCM_SHA384",
                           authenticated="alice@example.test", queue_id="abc",
                           now=datetime(2026, 11, 28, tzinfo=UTC))
    text = field.decode()
    assert text.startswith("Received: from client??Injected:?x ([192.0.2.1])")
    assert "with ESMTPSA" in text and "(authenticated as alice@example.test)" in text
    assert "(receive connector Client Frontend)" in text
    assert text.endswith("; Sat, 28 Nov 2026 00:00:00 +0000\r\n")
    lines = text.split("\r\n")[:-1]
    assert all(line.startswith("\t") for line in lines[1:])  # folded, one field


def test_new_message_id() -> None:
    a, b = new_message_id("mail1.example.test"), new_message_id("mail1.example.test")
    assert a != b and a.startswith("<") and a.endswith("@mail1.example.test>")
