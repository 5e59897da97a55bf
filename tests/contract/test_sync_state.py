"""Contract: ActiveSync sync state (docs/store.md, "Sync state")."""

from __future__ import annotations

import pytest

from gateway.errors import Conflict, ValidationError
from tests.contract.helpers import mailbox


async def test_put_get_cas_delete(store):
    mb = await mailbox(store)
    ss = store.sync_state
    assert await ss.get(mb.id, "dev1", "5") is None
    await ss.put(mb.id, "dev1", "5", "1", b"\x00state1", expected_sync_key="0")
    got = await ss.get(mb.id, "dev1", "5")
    assert got.sync_key == "1" and got.state == b"\x00state1"
    with pytest.raises(Conflict):
        await ss.put(mb.id, "dev1", "5", "2", b"s2", expected_sync_key="0")
    await ss.put(mb.id, "dev1", "5", "2", b"s2", expected_sync_key="1")
    await ss.put(mb.id, "dev1", "6", "1", b"other")
    await ss.put(mb.id, "dev2", "5", "9", b"dev2")
    assert [s.collection_id for s in await ss.list(mb.id, "dev1")] == ["5", "6"]
    assert await ss.delete(mb.id, "dev1", "6") == 1
    assert await ss.delete(mb.id, "dev1") == 1
    assert (await ss.get(mb.id, "dev2", "5")).state == b"dev2"
    with pytest.raises(ValidationError):
        await ss.put(mb.id, "", "5", "1", b"")
    with pytest.raises(ValidationError):
        await ss.put(mb.id, "d", "5", "k" * 65, b"")


async def test_racing_first_syncs_one_wins(store):
    import asyncio

    mb = await mailbox(store)
    results = await asyncio.gather(
        *(store.sync_state.put(mb.id, "dev", "1", f"k{i}", b"s", expected_sync_key="0")
          for i in range(6)), return_exceptions=True)
    assert sum(not isinstance(r, Exception) for r in results) == 1
    assert all(isinstance(r, Conflict) for r in results if isinstance(r, Exception))
