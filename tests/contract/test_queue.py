"""Contract tests of ``store.queue`` and ``store.send_connectors`` on both engines:
durable submission, leases, exactly-once local delivery, fenced outcomes."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from gateway.errors import AlreadyExists, NotFound, ValidationError
from gateway.store.analysis import analyse
from gateway.store.queue import NewMessage, NewRecipient, Outcome
from gateway.store.send_connectors import AddressSpace
from tests.contract.helpers import inbox, mailbox, message


def _msg(*recipients: NewRecipient, sender: str = "bob@example.test") -> NewMessage:
    return NewMessage(sender=sender, body=message(1), recipients=recipients,
                      message_id="<1@example.test>", subject="test 1",
                      expires_at=time.time() + 3600, delay_dsn_at=time.time() + 600)


def _remote(address: str = "x@remote.test") -> NewRecipient:
    return NewRecipient(address, "remote", address.rpartition("@")[2])


async def test_submit_and_claim_with_leases(store: Any) -> None:
    qid, ids = await store.queue.submit(_msg(_remote("a@r.test"), _remote("b@r.test")))
    now = time.time()
    first = await store.queue.claim("w1", now=now, lease_seconds=60)
    assert [r.id for r in first] == ids
    assert all(r.queue_id == qid and r.lease_owner == "w1" for r in first)
    # Leased: nobody else gets them until the lease runs out.
    assert await store.queue.claim("w2", now=now + 1, lease_seconds=60) == []
    taken = await store.queue.claim("w2", now=now + 61, lease_seconds=60)
    assert [r.lease_owner for r in taken] == ["w2", "w2"]
    # The first owner's late outcome is fenced off.
    recorded, finished = await store.queue.finish(qid, "w1", [Outcome(ids[0], "delivered")])
    assert recorded == [] and not finished
    recorded, finished = await store.queue.finish(
        qid, "w2", [Outcome(ids[0], "delivered"), Outcome(ids[1], "retry", "451 later",
                                                           now + 100)])
    assert recorded == ids and not finished
    row = await store.queue.get_message(qid)
    assert [r.status for r in row.recipients] == ["delivered", "retry"]
    assert row.recipients[1].attempts == 1 and row.recipients[1].last_error == "451 later"
    assert await store.queue.claim("w3", now=now + 99, lease_seconds=60) == []
    again = await store.queue.claim("w3", now=now + 101, lease_seconds=60)
    assert [r.id for r in again] == [ids[1]]
    _, finished = await store.queue.finish(qid, "w3", [Outcome(ids[1], "failed", "550 no")])
    assert finished
    with pytest.raises(NotFound):
        await store.queue.get_message(qid)


async def test_local_delivery_is_exactly_once(store: Any) -> None:
    alice = await mailbox(store, "alice")
    carol = await mailbox(store, "carol")
    qid, ids = await store.queue.submit(_msg(
        NewRecipient("alice@example.test", "local", "mailbox", alice.id),
        NewRecipient("carol@example.test", "local", "mailbox", carol.id)))
    facts = analyse(message(1))
    done, result, finished = await store.queue.deliver_local(
        qid, [(ids[0], alice.id)], facts)
    assert done == [ids[0]] and result is not None and not finished
    # A retry after a crash (same recipient again) delivers nothing twice.
    done, result, finished = await store.queue.deliver_local(
        qid, [(ids[0], alice.id), (ids[1], carol.id)], facts)
    assert done == [ids[1]] and finished
    for mb in (alice, carol):
        folder = await inbox(store, mb.id)
        assert len(await store.mail.list_uids(folder.id)) == 1


async def test_concurrent_claims_are_disjoint(store: Any) -> None:
    for n in range(20):
        await store.queue.submit(_msg(_remote(f"r{n}@r.test")))
    now = time.time()
    results = await asyncio.gather(*(store.queue.claim(f"w{i}", now=now, lease_seconds=60,
                                                       limit=7) for i in range(4)))
    ids = [r.id for rows in results for r in rows]
    assert len(ids) == len(set(ids)) == 20


async def test_reports_are_queued_with_the_outcome(store: Any) -> None:
    qid, ids = await store.queue.submit(_msg(_remote()))
    await store.queue.claim("w", now=time.time(), lease_seconds=60)
    ndr = _msg(_remote("bob@elsewhere.test"), sender="")
    await store.queue.finish(qid, "w", [Outcome(ids[0], "failed", "550 5.1.1 no")],
                             reports=[ndr])
    rows = await store.queue.list_messages()
    assert [(m.sender, m.recipients[0].address) for m in rows] == [("", "bob@elsewhere.test")]


async def test_suspend_resume_remove(store: Any) -> None:
    qid, _ = await store.queue.submit(_msg(_remote()))
    assert await store.queue.set_suspended(qid, True) == 1
    assert await store.queue.claim("w", now=time.time() + 1, lease_seconds=60) == []
    assert await store.queue.set_suspended(qid, False) == 1
    assert len(await store.queue.claim("w", now=time.time() + 1, lease_seconds=60)) == 1
    await store.queue.remove(qid)
    with pytest.raises(NotFound):
        await store.queue.remove(qid)


async def test_submit_validates(store: Any) -> None:
    with pytest.raises(ValidationError):
        await store.queue.submit(_msg())
    with pytest.raises(ValidationError):
        await store.queue.submit(_msg(NewRecipient("a@b.test", "nowhere", "x")))


async def test_send_connectors(store: Any) -> None:
    before = await store.org.version()
    c = await store.send_connectors.create(
        name="Internet", address_spaces=(AddressSpace("*", 1),),
        smart_hosts=("relay.example.test:2525",), dns_routing_enabled=False)
    assert await store.org.version() > before
    assert (await store.send_connectors.get("internet")).smart_hosts == (
        "relay.example.test:2525",)
    with pytest.raises(AlreadyExists):
        await store.send_connectors.create(name="INTERNET",
                                           address_spaces=(AddressSpace("*", 1),))
    with pytest.raises(ValidationError):
        await store.send_connectors.update(c.id, smart_hosts=())
    updated = await store.send_connectors.update(c.id, require_tls=True, port=587)
    assert updated.require_tls and updated.port == 587
    await store.send_connectors.delete(c.id)
    assert await store.send_connectors.list() == []


async def test_concurrent_outcomes_finish_the_message(store: Any) -> None:
    """Local and remote recipients of one message finished by two concurrent
    transactions: the last one must see the message done and delete it."""
    alice = await mailbox(store, "alice")
    facts = analyse(message(1))
    for _ in range(10):
        qid, ids = await store.queue.submit(_msg(
            NewRecipient("alice@example.test", "local", "mailbox", alice.id), _remote()))
        await store.queue.claim("w", now=time.time() + 1, lease_seconds=60)
        await asyncio.gather(
            store.queue.deliver_local(qid, [(ids[0], alice.id)], facts),
            store.queue.finish(qid, "w", [Outcome(ids[1], "delivered")]))
        with pytest.raises(NotFound):
            await store.queue.get_message(qid)
