"""End of data: make the message durable, then answer ``250 2.6.0``.

Role: the last steps of a transaction (reference exchange-semantics.md §4.2, order:
hop count -> header firewall -> queue): count ``Received:`` fields, strip the
firewalled headers, add a Message-ID when missing, prepend our Received field, then
commit - a message with any recipient routed out (relay granted by the connector) is
queued once, whole, with the relay engine (``gateway.relay``); a message for local
recipients only goes straight into the mailboxes through the store's delivery API -
and only then reply. A RECEIVE event goes to the
message tracking log (``store.tracking``).

Invariants (RFC 5321 §6.1, security.md A9): the 250 reply is returned only after every
part of the message is committed; if any commit fails the client gets a 4xx and may
retry (a duplicate is possible, a loss is not).
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import replace
from typing import TYPE_CHECKING

from gateway.errors import GatewayError
from gateway.relay.engine import Origin
from gateway.store.tracking import TrackingEvent
from protocols.smtp import replies
from protocols.smtp.message import (
    analyse_header,
    new_message_id,
    received_field,
    strip_fields,
)

if TYPE_CHECKING:
    from protocols.smtp.core import SessionCore, Transaction

log = logging.getLogger("protocols.smtp")


async def accept_message(session: SessionCore, tx: Transaction,
                         content: bytes) -> tuple[str, list[TrackingEvent]]:
    """Commit ``content`` for ``tx``'s recipients; return the reply line to send and
    the tracking events to record once the reply is on its way: RECEIVE, and DELIVER
    for the recipients delivered into their mailboxes here (empty when refused)."""
    policy = session.policy
    info = session.info
    facts = analyse_header(content)
    hops = policy.check_hop_count(facts.received_count)
    if not hops.allowed:
        log.info("smtp %s: refused at end of data: %s", info.connection_id, hops.reason)
        return str(hops.reply), []
    content = strip_fields(content, facts.header_end, policy.headers_to_strip())
    queue_id = secrets.token_hex(8)
    fqdn = policy.fqdn
    principal = policy.principal
    authenticated = None if principal.is_anonymous else (principal.login_name
                                                          or principal.name)
    tls = f"{info.tls_version} {info.tls_cipher}" if info.tls else None
    prefix = received_field(helo=session.helo, remote_ip=info.remote_ip, fqdn=fqdn,
                            connector=policy.connector.name, esmtp=session.esmtp, tls=tls,
                            authenticated=authenticated, queue_id=queue_id)
    message_id = facts.message_id
    if message_id is None:
        message_id = new_message_id(fqdn)
        prefix += f"Message-ID: {message_id}\r\n".encode()
    local = [r for r in tx.recipients if r.route == "local" and r.mailbox_id is not None]
    remote = [r for r in tx.recipients if r.route != "local" or r.mailbox_id is None]
    store = session.ctx.store
    relay = session.ctx.relay
    internal_id: int | None = None
    delivered_here = False
    try:
        if remote and relay is not None:
            # Any recipient routed out: the whole message is queued once, in one
            # transaction, and the relay's categoriser delivers the local part too, so a
            # failed commit can never leave local copies behind a 4xx (issue 4 item 1).
            queued = await relay.submit(
                tx.sender, [str(r.address) for r in tx.recipients], prefix + content,
                origin=Origin(client_ip=info.remote_ip, client_hostname=session.helo,
                              connector_id=policy.connector.identity, source="SMTP"),
                auth=authenticated or "")
            internal_id = queued.queue_id
        else:
            # Only local recipients (the common inbound case): straight into the
            # mailboxes through the store's delivery API, one group-committed write.
            if local:
                # The DATA decoder repaired every bare CR and LF: the content is
                # already in the stored CRLF form.
                delivery = store.begin_delivery(max_size=len(prefix) + len(content) + 1,
                                                stored_form=True)
                for r in local:
                    delivery.add_recipient(r.mailbox_id)
                await delivery.write(prefix)
                await delivery.write(content)
                result = await delivery.commit()
                delivered_here = True
                internal_id = result.recipients[0].message_id if result.recipients else None
            if remote:  # no relay engine (a harness): a node's relay adopts these rows
                queued_row = await store.relay_queue.enqueue(
                    sender=tx.sender, recipients=[str(r.address) for r in remote],
                    body=prefix + content, message_id=message_id,
                    connector_id=policy.connector.identity, client_ip=info.remote_ip,
                    authenticated_as=authenticated or "")
                internal_id = internal_id if internal_id is not None else queued_row
    except GatewayError as exc:
        log.error("smtp %s: could not commit message %s: %s: %s", info.connection_id,
                  message_id, type(exc).__name__, exc)
        return replies.TEMPORARY_ERROR, []
    session.plog("*", "", f"{message_id} queued, {len(local)} local and {len(remote)} "
                 f"relay recipients")
    event = _event(session, tx, facts.subject, message_id, internal_id,
                   len(prefix) + len(content))
    events = [event]
    if delivered_here:
        # The mailbox delivery happened in this process, in the commit above: log it
        # as the relay's store driver would (Exchange: DELIVER, source STOREDRIVER).
        addresses = tuple(str(r.address) for r in local)
        events.append(replace(event, event_id="DELIVER", source="STOREDRIVER",
                              recipients=addresses,
                              recipient_status=tuple("250 2.0.0 delivered"
                                                     for _ in addresses)))
    return replies.QUEUED.format(message_id=message_id, internal_id=internal_id,
                                 hostname=fqdn), events


def record(session: SessionCore, events: list[TrackingEvent]) -> None:
    """Hand the events to the tracking writer (written in the background)."""
    if session.ctx.tracking is not None:
        for event in events:
            session.ctx.tracking.add(event)


def _event(session: SessionCore, tx: Transaction, subject: str, message_id: str,
           internal_id: int | None, size: int) -> TrackingEvent:
    info = session.info
    recipients = tuple(str(r.address) for r in tx.recipients)
    return TrackingEvent(
        at=time.time(), event_id="RECEIVE", source="SMTP", client_ip=info.remote_ip,
        client_hostname=session.helo, server_ip=info.local_ip,
        server_hostname=session.ctx.server_name,
        source_context=f"{info.connection_id};{'tls' if info.tls else 'plain'};"
                       f"{session.policy.principal.name}",
        connector_id=session.connector_id, internal_message_id=internal_id,
        message_id=message_id, recipients=recipients,
        recipient_status=tuple("250 2.1.5 Recipient OK" for _ in recipients),
        total_bytes=size, message_subject=subject, sender_address=tx.sender,
        return_path=tx.sender, directionality="Originating"
        if not session.policy.principal.is_anonymous else "Incoming",
        original_client_ip=info.peer_ip if info.proxied else "")
