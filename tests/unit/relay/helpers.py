"""Helpers for the relay tests: an organisation, a relay with short intervals, and
mailbox inspection."""

from __future__ import annotations

from typing import Any

from gateway.relay import Relay, TransportSettings
from gateway.relay.routing import StaticResolver

FAST = TransportSettings(
    message_expiration_timeout=30.0, delay_notification_timeout=10.0,
    transient_failure_retry_count=2, transient_failure_retry_interval=0.2,
    message_retry_interval=0.5, outbound_connection_failure_retry_interval=0.3,
    lease_seconds=5.0, poll_interval=0.1, connect_timeout=2.0, command_timeout=2.0,
    data_timeout=2.0)


def raw(subject: str = "hello", *, extra: bytes = b"", body: bytes = b"Hi there\r\n") -> bytes:
    return (b"From: Bob <bob@example.test>\r\nTo: alice@outlook.test\r\n"
            b"Subject: " + subject.encode() + b"\r\nMessage-ID: <" + subject.encode()
            + b"@example.test>\r\n" + extra + b"\r\n" + body)


async def organisation(store: Any) -> dict[str, Any]:
    await store.org.create_accepted_domain("example", "example.test")
    await store.org.create_accepted_domain("partner", "partner.test", "InternalRelay")
    await store.org.create_accepted_domain("ext", "ext.test", "ExternalRelay")
    boxes = {}
    for name in ("alice", "bob", "carol"):
        boxes[name] = await store.org.create_mailbox(
            name=name, primary_smtp_address=f"{name}@example.test",
            email_addresses=(f"{name}.alias@Example.TEST",) if name == "carol" else ())
    boxes["dave"] = await store.org.create_mailbox(
        name="dave", primary_smtp_address="dave@partner.test")
    return boxes


def make_relay(store: Any, *, resolver: StaticResolver | None = None,
               settings: TransportSettings = FAST, **kw: Any) -> Relay:
    return Relay(store, server_name="mail1.example.test",
                 resolver=resolver or StaticResolver(), settings=settings, **kw)


async def inbox_messages(store: Any, mailbox_id: int) -> list[bytes]:
    folder = await store.mail.get_special_folder(mailbox_id, "inbox")
    rows = await store.mail.list_messages(folder.id, limit=1000, newest_first=False)
    return [await store.mail.read_content(m.id) for m, _ in rows]
