"""POP3 read-ahead: windows read in one store call, used once, bounded, ramped."""

from __future__ import annotations

import asyncio

import pytest

from gateway.errors import NotFound, StoreUnavailable
from gateway.store.models import Folder, Message
from protocols.pop3 import readahead
from protocols.pop3.maildrop import Maildrop
from protocols.pop3.readahead import RAMP_START, WINDOW_MESSAGES, ReadAhead

CHUNK = 1000


def drop_of(sizes: list[int]) -> Maildrop:
    folder = Folder(id=5, mailbox_id=1, parent_id=None, name="Inbox", full_name="Inbox",
                    special_use="inbox", uidvalidity=77, uidnext=len(sizes) + 1,
                    highest_modseq=1, message_count=len(sizes), unseen_count=0,
                    total_size=sum(sizes), subscribed=True)
    return Maildrop(folder, [Message(id=100 + n, mailbox_id=1, folder_id=5, uid=n,
                                     content_id=n, flags=0, keywords=(), internal_date=0.0,
                                     size=size, modseq=1)
                             for n, size in enumerate(sizes, start=1)])


class FakeStore:
    """``read_contents`` over message ids 101.., recording each call."""

    def __init__(self, gone: frozenset[int] = frozenset()) -> None:
        self.calls: list[list[int]] = []
        self.gone = set(gone)
        self.fail = False

    async def read_contents(self, ids: list[int]) -> dict[int, bytes]:
        self.calls.append(list(ids))
        await asyncio.sleep(0)
        if self.fail:
            raise StoreUnavailable("down")
        return {i: b"message %d\r\n" % (i - 100) for i in ids if i not in self.gone}


async def read_in_order(ra: ReadAhead, drop: Maildrop, store: FakeStore,
                        numbers: range) -> list[bytes]:
    got = []
    for n in numbers:
        got.append(await ra.content(n, drop, store.read_contents))
        ra.advance(n, drop, store.read_contents)
    return got


async def test_sequential_reading_costs_one_store_call_per_window() -> None:
    drop, store, ra = drop_of([10] * 200), FakeStore(), ReadAhead(CHUNK)
    got = await read_in_order(ra, drop, store, range(1, 201))
    assert got == [b"message %d\r\n" % n for n in range(1, 201)]
    # the window ramps up from RAMP_START to WINDOW_MESSAGES, each message read once
    assert store.calls[0] == list(range(101, 101 + RAMP_START))
    assert max(len(c) for c in store.calls) == WINDOW_MESSAGES
    assert sorted(i for c in store.calls for i in c) == list(range(101, 301))
    assert len(store.calls) <= 200 // WINDOW_MESSAGES + 4
    ra.cancel()
    assert len(ra) == 0


async def test_windows_are_bounded_in_octets_and_stop_at_large_messages(
        monkeypatch: pytest.MonkeyPatch) -> None:
    sizes = [400] * 5 + [CHUNK + 1] + [10] * 5
    drop, ra = drop_of(sizes), ReadAhead(CHUNK)
    assert list(ra.plan(drop, 1, 32)) == list(range(1, 6))  # stops at the large one
    assert list(ra.plan(drop, 6, 32)) == []
    monkeypatch.setattr(readahead, "WINDOW_OCTETS", 1000)
    assert list(ra.plan(drop, 1, 32)) == [1, 2]  # 800 octets; a third passes 1000
    drop.mark_deleted(8)
    assert list(ra.plan(drop, 7, 32)) == [7, 9, 10, 11]  # marked messages are skipped


async def test_out_of_order_reading_drops_the_windows_and_restarts_the_ramp() -> None:
    drop, store, ra = drop_of([10] * 100), FakeStore(), ReadAhead(CHUNK)
    await read_in_order(ra, drop, store, range(1, 20))
    assert ra.covers(20)
    assert not ra.covers(90)  # two windows at most
    assert await ra.content(90, drop, store.read_contents) == b"message 90\r\n"
    assert store.calls[-1] == list(range(190, 190 + RAMP_START))
    assert not ra.covers(20) and ra.covers(91)
    # going back: not held any more, read again
    assert await ra.content(2, drop, store.read_contents) == b"message 2\r\n"
    assert store.calls[-1][0] == 102


async def test_a_content_is_used_once_and_only_while_fresh(
        monkeypatch: pytest.MonkeyPatch) -> None:
    drop, store, ra = drop_of([10] * 20), FakeStore(), ReadAhead(CHUNK)
    await ra.content(1, drop, store.read_contents)  # window 1..4
    calls = len(store.calls)
    await ra.content(2, drop, store.read_contents)
    assert len(store.calls) == calls  # from the window
    await ra.content(2, drop, store.read_contents)  # again: used up, read again
    assert len(store.calls) == calls + 1
    monkeypatch.setattr(readahead, "MAX_AGE", -1.0)
    await ra.content(3, drop, store.read_contents)  # held, but stale: read again
    assert len(store.calls) == calls + 2


async def test_a_message_gone_from_the_store_raises_not_found() -> None:
    drop, store, ra = drop_of([10] * 10), FakeStore(gone=frozenset({103})), ReadAhead(CHUNK)
    assert await ra.content(1, drop, store.read_contents) == b"message 1\r\n"
    with pytest.raises(NotFound):
        await ra.content(3, drop, store.read_contents)
    assert await ra.content(4, drop, store.read_contents) == b"message 4\r\n"


async def test_a_failed_window_read_is_reported_once_and_forgotten() -> None:
    drop, store, ra = drop_of([10] * 10), FakeStore(), ReadAhead(CHUNK)
    store.fail = True
    with pytest.raises(StoreUnavailable):
        await ra.content(1, drop, store.read_contents)
    assert len(ra) == 0
    store.fail = False
    assert await ra.content(1, drop, store.read_contents) == b"message 1\r\n"
    # a background window that fails leaves no "exception never retrieved" behind
    store.fail = True
    ra.advance(1, drop, store.read_contents)
    ra.cancel()
    await asyncio.sleep(0.01)


async def test_dele_and_rset_need_no_invalidation() -> None:
    # RFC 1939 §8: number -> message is fixed for the session; a held content stays
    # right for its number whatever DELE and RSET do to the marks.
    drop, store, ra = drop_of([10] * 10), FakeStore(), ReadAhead(CHUNK)
    await ra.content(1, drop, store.read_contents)  # window 1..4
    drop.mark_deleted(2)
    drop.reset()
    assert await ra.content(2, drop, store.read_contents) == b"message 2\r\n"
    assert ra.peek(3) == b"message 3\r\n" and ra.peek(3) == b"message 3\r\n"  # TOP
    assert await ra.content(3, drop, store.read_contents) == b"message 3\r\n"
    assert ra.peek(3) is None
