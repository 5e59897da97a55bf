"""The relay engine: submission, the queue worker loop and outcome handling.

    relay = Relay(store, server_name="mail1.example.test", resolver=DnsResolver())
    queued = await relay.submit("bob@example.test", ["alice@outlook.test"], raw,
                                origin=Origin(client_ip="192.0.2.7", connector_id="..."),
                                auth="bob@example.test")
    await relay.run()            # the worker loop (RelayService runs it in the node)

Invariants:
* ``submit`` returns only once the message and all its categorised recipients are
  committed (one transaction); front ends answer 250 after it returns;
* every claimed recipient ends in exactly one outcome: delivered, failed (with an NDR
  to a non-null sender, queued in the same transaction) or retry at a time no later
  than the message's expiry;
* local delivery is exactly once (``QueueStore.deliver_local``); remote delivery is
  at least once (a lost final reply is retried);
* loops stop: a message with more than ``max_hop_count`` Received fields fails with
  5.4.6 (RFC 5321 §6.3);
* no report is sent about a report or to the null sender (RFC 3464 §2).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
import time
import uuid
from collections.abc import AsyncIterable, Sequence
from dataclasses import dataclass, replace
from email.parser import BytesHeaderParser
from email.policy import compat32

from gateway.errors import GatewayError, NotFound, ValidationError
from gateway.mime import normalise_line_endings
from gateway.relay.categoriser import Categoriser, Category
from gateway.relay.dsn import Failure, build_report, original_headers
from gateway.relay.remote import RecipientResult, RemoteAgent
from gateway.relay.routing import DnsResolver, Resolver
from gateway.relay.settings import SECTION, TransportSettings
from gateway.store import Store
from gateway.store.analysis import analyse
from gateway.store.queue import NewMessage, NewRecipient, Outcome, QueueRow, RecipientRow
from gateway.store.send_connectors import SendConnector
from gateway.store.tracking import TrackingEvent

log = logging.getLogger("gateway.relay")

DEFAULT_MAX_SIZE = 50 * 1024 * 1024
CLAIM_BATCH = 8  # a claim smaller than this waits CLAIM_GATHER_SECONDS before the next
CLAIM_GATHER_SECONDS = 0.005
SETTINGS_TTL = 30.0
CONNECTOR_TTL = 5.0
EXPIRED = "550 4.4.7 QUEUE.Expired; message expired"
LOOP = "554 5.4.6 Hop count exceeded - possible mail loop"
ADMIN_REMOVED = "550 4.3.2 QUEUE.Admin; message deleted by administrative action"


@dataclass(frozen=True)
class Origin:
    """Where a submitted message came from (tracking log, Get-Message)."""

    client_ip: str = ""
    client_hostname: str = ""
    connector_id: str = ""
    source: str = "SMTP"  # SMTP | OWA | ActiveSync | DSN


@dataclass(frozen=True)
class QueuedMessage:
    """A durable queued message: its queue id and recipient ids, and what the queue
    knows of it."""

    queue_id: int
    recipient_ids: tuple[int, ...]
    size: int
    message_id: str
    local_recipients: int
    remote_recipients: int
    failed_recipients: int


def _header_facts(body: bytes) -> tuple[str, str, int]:
    """(Message-ID, Subject, number of Received fields) of the header block."""
    msg = BytesHeaderParser(policy=compat32).parsebytes(original_headers(body))
    received = len(msg.get_all("Received") or [])
    return (str(msg.get("Message-ID", "") or "").strip()[:998],
            " ".join(str(msg.get("Subject", "") or "").split())[:998], received)


async def _collect(message: bytes | AsyncIterable[bytes], limit: int) -> bytes:
    if isinstance(message, bytes | bytearray | memoryview):
        data = bytes(message)
    else:
        parts: list[bytes] = []
        size = 0
        async for chunk in message:
            size += len(chunk)
            if size > limit:
                break
            parts.append(bytes(chunk))
        if size > limit:
            raise ValidationError(f"message exceeds the size limit of {limit} octets")
        data = b"".join(parts)
    if len(data) > limit:
        raise ValidationError(f"message exceeds the size limit of {limit} octets")
    return data


class Relay:
    """The relay engine of one process (see module docstring)."""

    def __init__(self, store: Store, *, server_name: str, resolver: Resolver | None = None,
                 settings: TransportSettings | None = None, max_size: int = DEFAULT_MAX_SIZE,
                 tls_context: ssl.SSLContext | None = None, owner: str | None = None) -> None:
        self.store = store
        self.server_name = server_name
        self.max_size = max_size
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.categoriser = Categoriser(store.org)
        self._fixed_settings = settings
        self._settings = settings or TransportSettings()
        self._settings_at = 0.0
        self._wake = asyncio.Event()
        self.remote = RemoteAgent(
            helo_name=server_name, connectors=self._send_connectors,
            resolver=resolver or DnsResolver(), settings=lambda: self._settings,
            tls_context=tls_context)
        self.delivered_local = 0
        self.delivered_remote = 0
        self._connectors: list[SendConnector] | None = None
        self._connectors_at = 0.0

    # -- settings -----------------------------------------------------------------------

    @property
    def settings(self) -> TransportSettings:
        return self._settings

    async def reload_settings(self, *, force: bool = False) -> TransportSettings:
        """Re-read the organisation's ``transport`` settings (bad ones are logged and
        the previous ones kept)."""
        if self._fixed_settings is not None:
            return self._settings
        if force or time.monotonic() - self._settings_at > SETTINGS_TTL:
            self._settings_at = time.monotonic()
            try:
                self._settings = TransportSettings.from_values(
                    await self.store.org.get_settings(SECTION))
            except ValidationError as exc:
                log.error("relay: ignoring bad transport settings: %s", exc)
        return self._settings

    def on_org_change(self) -> None:
        self.categoriser.invalidate()
        self._settings_at = 0.0
        self._connectors = None

    async def _send_connectors(self) -> list[SendConnector]:
        """The send connectors, re-read at most every ``CONNECTOR_TTL`` seconds (and
        on an organisation change) rather than once per delivery."""
        if self._connectors is None or time.monotonic() - self._connectors_at > CONNECTOR_TTL:
            self._connectors = await self.store.send_connectors.list()
            self._connectors_at = time.monotonic()
        return self._connectors

    # -- submission -----------------------------------------------------------------------

    async def submit(self, sender: str, recipients: Sequence[str],
                     message: bytes | AsyncIterable[bytes], *, origin: Origin | None = None,
                     auth: str = "", is_dsn: bool = False) -> QueuedMessage:
        """Queue ``message`` for ``recipients``; returns once durable.

        ``sender`` is the envelope sender ("" for the null reverse-path). Raises
        ``ValidationError`` for no recipients, too many, or a message over the limit.
        """
        if not recipients:
            raise ValidationError("a message needs at least one recipient")
        origin = origin or Origin()
        body = normalise_line_endings(await _collect(message, self.max_size))
        settings = await self.reload_settings()
        categories = await self.categoriser.categorise_all(list(recipients))
        new = self._new_message(sender, list(recipients), categories, body, origin, auth,
                                settings, is_dsn=is_dsn)
        queue_id, ids = await self.store.queue.submit(new)
        self._wake.set()
        return QueuedMessage(queue_id, tuple(ids), len(body), new.message_id,
                             sum(c.route == "local" for c in categories),
                             sum(c.route == "remote" for c in categories),
                             sum(c.route == "failed" for c in categories))

    def _new_message(self, sender: str, recipients: list[str], categories: list[Category],
                     body: bytes, origin: Origin, auth: str, settings: TransportSettings,
                     *, is_dsn: bool) -> NewMessage:
        message_id, subject, hops = _header_facts(body)
        now = time.time()
        rows = tuple(NewRecipient(
            address=a, route=c.route, mailbox_id=c.mailbox_id,
            next_hop="mailbox" if c.route == "local" else c.domain, last_error=c.error)
            for a, c in zip(recipients, categories, strict=True))
        return NewMessage(
            sender=sender, body=body, recipients=rows, message_id=message_id,
            subject=subject, hop_count=hops, source=origin.source,
            client_ip=origin.client_ip, client_hostname=origin.client_hostname,
            connector_id=origin.connector_id, authenticated_as=auth,
            expires_at=now + settings.message_expiration_timeout,
            delay_dsn_at=now + settings.delay_notification_timeout, is_dsn=is_dsn)

    async def adopt_legacy(self, *, limit: int = 100) -> int:
        """Take over messages the SMTP front end put in its interim ``relay_queue``
        (before it hands mail to ``submit``); returns how many were adopted."""
        legacy = getattr(self.store, "relay_queue", None)
        if legacy is None:
            return 0
        adopted = 0
        settings = await self.reload_settings()
        for row in await legacy.list(limit=limit):
            body = await legacy.body(row.id)
            if body is None:
                continue
            categories = await self.categoriser.categorise_all(list(row.recipients))
            new = self._new_message(
                row.sender, list(row.recipients), categories, body,
                Origin(client_ip=row.client_ip, connector_id=row.connector_id),
                row.authenticated_as, settings, is_dsn=False)
            try:
                if await self.store.queue.adopt_legacy(row.id, new) is not None:
                    adopted += 1
            except ValidationError as exc:  # never block the rows behind a bad one
                log.error("relay: cannot adopt interim queue row %d: %s", row.id, exc)
        if adopted:
            self._wake.set()
        return adopted

    async def remove_message(self, queue_id: int, *, with_ndr: bool) -> None:
        """Remove-Message: delete a queued message; with ``with_ndr`` its sender gets
        an NDR for every recipient not yet delivered (queued in the same
        transaction). ``NotFound`` when it is not queued."""
        msg = await self.store.queue.get_message(queue_id)
        pending = [r for r in msg.recipients if r.status not in ("delivered", "failed")]
        report = None
        if with_ndr and pending and msg.sender and not msg.is_dsn:
            body = await self.store.queue.body(queue_id)
            report = await self._report(
                "failed", msg, [Failure(r.address, ADMIN_REMOVED) for r in pending], body,
                await self.reload_settings())
        await self.store.queue.remove(queue_id, report=report)
        if pending:
            with contextlib.suppress(GatewayError):
                await self.store.tracking.append(TrackingEvent(
                    at=time.time(), event_id="FAIL", source="ADMIN",
                    internal_message_id=msg.id, message_id=msg.message_id,
                    recipients=tuple(r.address for r in pending),
                    recipient_status=tuple(ADMIN_REMOVED for _ in pending),
                    total_bytes=msg.size, message_subject=msg.subject,
                    sender_address=msg.sender, return_path=msg.sender,
                    server_hostname=self.server_name))
        self._wake.set()

    # -- the worker -----------------------------------------------------------------------

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Claim and deliver until cancelled. At most ``max_concurrent_deliveries``
        claimed groups are in flight; the loop sleeps until woken by a submission in
        this process, the next due retry, or ``poll_interval`` (work queued by other
        processes)."""
        inflight: set[asyncio.Task[None]] = set()
        claimed = 0
        try:
            while True:
                settings = await self.reload_settings()
                free = settings.max_concurrent_deliveries - len(inflight)
                timeout = settings.poll_interval
                if free > 0:
                    # Claiming is a write transaction: when nothing woke us and the last
                    # claim found nothing, a read decides whether anything is due.
                    must_claim = self._wake.is_set() or claimed > 0
                    self._wake.clear()
                    claimed = 0
                    try:
                        if not must_claim:
                            due = await self.store.queue.next_due()
                            wait_for = None if due is None else due - time.time()
                            must_claim = wait_for is not None and wait_for <= 0
                            if wait_for is not None and wait_for > 0:
                                timeout = min(timeout, wait_for)
                        if must_claim:
                            claimed = await self._claim_and_start(free, inflight)
                    except GatewayError as exc:
                        log.warning("relay: cannot claim work: %s", exc)
                if claimed and len(inflight) < settings.max_concurrent_deliveries:
                    if claimed < CLAIM_BATCH:
                        # Let concurrent submissions gather so one claim transaction
                        # takes several (fewer commits); bounded, so latency stays low.
                        await asyncio.sleep(CLAIM_GATHER_SECONDS)
                    continue
                waker = asyncio.ensure_future(self._wake.wait())
                try:
                    await asyncio.wait([waker, *inflight], timeout=timeout,
                                       return_when=asyncio.FIRST_COMPLETED)
                finally:
                    waker.cancel()
        finally:
            for task in inflight:
                task.cancel()
            if inflight:
                await asyncio.gather(*inflight, return_exceptions=True)
            await self.remote.close()

    async def run_once(self) -> int:
        """Claim what is due and deliver it (tests, admin tools); returns how many
        recipients were claimed."""
        inflight: set[asyncio.Task[None]] = set()
        claimed = await self._claim_and_start(self.settings.max_concurrent_deliveries,
                                              inflight)
        if inflight:
            await asyncio.gather(*inflight)
        return claimed

    async def drain(self, *, seconds: float = 10.0) -> None:
        """Run until nothing is due, for at most ``seconds`` (tests)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if not await self.run_once():
                return

    async def _claim_and_start(self, free: int, inflight: set[asyncio.Task[None]]) -> int:
        settings = self.settings
        rows = await self.store.queue.claim(self.owner, now=time.time(),
                                            lease_seconds=settings.lease_seconds,
                                            limit=min(max(free, 1) * 4, 1000))
        groups: dict[int, list[RecipientRow]] = {}
        for r in rows:
            groups.setdefault(r.queue_id, []).append(r)
        for queue_id, group in groups.items():
            task = asyncio.ensure_future(self._process_safely(queue_id, group))
            inflight.add(task)
            task.add_done_callback(inflight.discard)
        return len(rows)

    async def _process_safely(self, queue_id: int, group: list[RecipientRow]) -> None:
        try:
            await self.process(queue_id, group)
        except asyncio.CancelledError:
            raise
        except Exception:
            # The lease expires and another attempt takes the work again.
            log.exception("relay: processing queued message %d failed", queue_id)

    # -- one claimed group --------------------------------------------------------------

    async def process(self, queue_id: int, group: list[RecipientRow]) -> None:
        try:
            msg, body = await self.store.queue.load(queue_id)
        except NotFound:
            return  # removed by an operator meanwhile
        settings = self.settings
        now = time.time()
        results: dict[int, RecipientResult] = {}
        delivered_now: list[RecipientRow] = []
        if msg.hop_count > settings.max_hop_count:
            results = {r.id: RecipientResult("failed", LOOP) for r in group}
        elif now >= msg.expires_at:
            results = {r.id: RecipientResult("failed", f"{EXPIRED}; last error: "
                                             f"{r.last_error}" if r.last_error else EXPIRED)
                       for r in group}
        else:
            for r in group:
                if r.route == "failed":
                    results[r.id] = RecipientResult("failed", r.last_error)
            local = [r for r in group if r.route == "local"]
            if local:
                delivered_now = await self._deliver_local(queue_id, local, body, results)
            remote: dict[str, list[RecipientRow]] = {}
            for r in group:
                if r.route == "remote":
                    remote.setdefault(r.next_hop, []).append(r)
            for domain, rs in remote.items():
                replies = await self.remote.deliver(domain, msg.sender,
                                                    [r.address for r in rs], body)
                results.update({r.id: res for r, res in zip(rs, replies, strict=True)})
        await self._record(msg, group, body, results, delivered_now, settings)

    async def _deliver_local(self, queue_id: int, local: list[RecipientRow], body: bytes,
                             results: dict[int, RecipientResult]) -> list[RecipientRow]:
        targets = [(r.id, r.mailbox_id) for r in local if r.mailbox_id is not None]
        try:
            facts = await asyncio.to_thread(analyse, body)
            done, _, _ = await self.store.queue.deliver_local(queue_id, targets, facts)
        except NotFound:
            # A mailbox went away since categorisation: deliver one by one so the
            # others still get the message, and fail the missing ones.
            done = []
            for rid, mb in targets:
                try:
                    ids, _, _ = await self.store.queue.deliver_local(queue_id, [(rid, mb)],
                                                                     facts)
                    done += ids
                except NotFound:
                    results[rid] = RecipientResult(
                        "failed", "550 5.1.1 RESOLVER.ADR.ExRecipNotFound; not found")
        except GatewayError as exc:
            for r in local:
                results[r.id] = RecipientResult("retry", f"432 4.3.2 STOREDRV.Deliver; {exc}")
            return []
        self.delivered_local += len(done)
        return [r for r in local if r.id in set(done)]

    async def _record(self, msg: QueueRow, group: list[RecipientRow], body: bytes,
                      results: dict[int, RecipientResult], delivered_now: list[RecipientRow],
                      settings: TransportSettings) -> None:
        now = time.time()
        outcomes: list[Outcome] = []
        for r in group:
            res = results.get(r.id)
            if res is None:
                continue
            if res.status == "retry":
                delay = settings.retry_delay(r.attempts + 1,
                                             connection_failure=res.connection_failure)
                outcomes.append(Outcome(r.id, "retry", res.reply,
                                        min(now + delay, msg.expires_at)))
            else:
                outcomes.append(Outcome(r.id, res.status, res.reply))
        by_id = {r.id: r for r in group}
        failures = [Failure(by_id[o.recipient_id].address, o.error,
                            results[o.recipient_id].remote_mta)
                    for o in outcomes if o.status == "failed"]
        retries = [Failure(by_id[o.recipient_id].address, o.error,
                           results[o.recipient_id].remote_mta)
                   for o in outcomes if o.status == "retry"]
        reports: list[NewMessage] = []
        notify_delay = False
        can_report = bool(msg.sender) and not msg.is_dsn
        if failures and can_report:
            report = await self._report("failed", msg, failures, body, settings)
            if report is not None:
                reports.append(report)
        if (retries and can_report and not msg.delay_notified
                and now >= msg.delay_dsn_at):
            report = await self._report("delayed", msg, retries, body, settings)
            if report is not None:
                reports.append(report)
                notify_delay = True
        recorded: list[int] = []
        if outcomes or reports:
            recorded, _ = await self.store.queue.finish(msg.id, self.owner, outcomes,
                                                        reports=reports,
                                                        delay_notified=notify_delay)
        if reports:
            self._wake.set()
        self.delivered_remote += sum(1 for o in outcomes if o.status == "delivered"
                                     and o.recipient_id in recorded)
        await self._track(msg, delivered_now, outcomes, by_id, set(recorded), results,
                          reports)

    async def _report(self, kind: str, msg: QueueRow, failures: list[Failure], body: bytes,
                      settings: TransportSettings) -> NewMessage | None:
        postmaster = await self._postmaster()
        raw = build_report(kind=kind, server_name=self.server_name, postmaster=postmaster,
                           original_sender=msg.sender, original_subject=msg.subject,
                           original_message_id=msg.message_id, arrival=msg.created_at,
                           failures=failures, body=body, retry_until=msg.expires_at)
        category = await self.categoriser.categorise(msg.sender)
        if category.route == "failed":
            log.warning("relay: dropping a %s report for queued message %d: sender %r is "
                        "not deliverable (%s)", kind, msg.id, msg.sender, category.error)
            return None
        return self._new_message("", [msg.sender], [category], raw,
                                 Origin(source="DSN"), "", settings, is_dsn=True)

    async def _postmaster(self) -> str:
        try:
            for d in await self.store.org.list_accepted_domains():
                if d.is_default and not d.domain_name.startswith("*"):
                    return f"postmaster@{d.domain_name}"
        except GatewayError:
            pass
        return f"postmaster@{self.server_name}"

    async def _track(self, msg: QueueRow, delivered_now: list[RecipientRow],
                     outcomes: list[Outcome], by_id: dict[int, RecipientRow],
                     recorded: set[int], results: dict[int, RecipientResult],
                     reports: list[NewMessage]) -> None:
        now = time.time()
        base = TrackingEvent(
            at=now, event_id="DELIVER", internal_message_id=msg.id,
            message_id=msg.message_id, total_bytes=msg.size, message_subject=msg.subject,
            sender_address=msg.sender, return_path=msg.sender,
            server_hostname=self.server_name,
            directionality="Originating" if msg.authenticated_as else "Incoming")
        events: list[TrackingEvent] = []
        if delivered_now:
            events.append(replace(
                base, source="STOREDRIVER",
                recipients=tuple(r.address for r in delivered_now),
                recipient_status=tuple("250 2.0.0 delivered" for _ in delivered_now)))
        kinds = {"delivered": "SEND", "retry": "DEFER", "failed": "FAIL"}
        for status, event_id in kinds.items():
            chosen = [o for o in outcomes if o.status == status and o.recipient_id in recorded]
            if not chosen:
                continue
            source = "SMTP" if status == "delivered" else "ROUTING"
            first = results.get(chosen[0].recipient_id)
            events.append(replace(
                base, event_id=event_id, source=source,
                connector_id=first.remote_mta if first else "",
                recipients=tuple(by_id[o.recipient_id].address for o in chosen),
                recipient_status=tuple(o.error or "250 2.0.0 sent" for o in chosen)))
        for report in reports:
            events.append(replace(
                base, event_id="DSN", source="DSN", recipients=(msg.sender,),
                recipient_status=("delay" if report.subject.startswith("Delivery delayed")
                                  else "failed",)))
        for event in events:
            with contextlib.suppress(GatewayError):
                await self.store.tracking.append(event)
