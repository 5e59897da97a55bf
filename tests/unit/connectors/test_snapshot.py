"""Accepted-domain matching of the snapshot and the refresh of the snapshot cache."""

from __future__ import annotations

from gateway.connectors.snapshot import SnapshotCache
from tests.unit.connectors import org


def test_match_domain():
    snap = org.snapshot()
    assert snap.match_domain("example.test").domain_name == "example.test"
    assert snap.match_domain("EXAMPLE.TEST").domain_name == "example.test"
    assert snap.match_domain("relay.example.test").domain_type == "InternalRelay"
    assert snap.match_domain("a.b.wild.test").domain_name == "*.wild.test"
    assert snap.match_domain("wild.test") is None            # subdomains only
    assert snap.match_domain("evilwild.test") is None
    assert snap.match_domain("evilexample.test") is None
    assert snap.match_domain("sub.example.test") is None
    assert snap.match_domain("[192.0.2.1]") is None
    assert snap.match_domain("") is None
    assert snap.connector("mail1\\default frontend mail1").name == "Default Frontend mail1"
    assert snap.connector("nope") is None


class _Org:
    def __init__(self):
        self.v = 1
        self.reads = 0

    async def version(self):
        self.reads += 1
        return self.v

    async def list_accepted_domains(self):
        return list(org.DOMAINS)


class _Connectors:
    def __init__(self):
        self.loads = 0

    async def list_receive_connectors(self, *, server):
        self.loads += 1
        return org.defaults()


class _Store:
    def __init__(self):
        self.org = _Org()
        self.connectors = _Connectors()


async def test_cache_reloads_only_when_the_version_moves():
    store = _Store()
    now = [0.0]
    cache = SnapshotCache(store, "mail1", refresh_interval=1.0, clock=lambda: now[0])
    first = await cache.get()
    assert store.connectors.loads == 1
    assert await cache.get() is first and store.org.reads == 2   # one read per load
    now[0] = 1.5
    assert await cache.get() is first                            # same version: no load
    assert store.connectors.loads == 1 and store.org.reads == 3
    store.org.v = 2
    assert await cache.get() is first                            # within the interval
    now[0] = 3.0
    second = await cache.get()
    assert second is not first and second.version == 2 and store.connectors.loads == 2
    cache.invalidate()
    assert (await cache.get()) is not second


async def test_recipient_cache_is_per_version():
    from gateway.connectors.policy import RecipientCache

    calls = []

    async def lookup(address):
        calls.append(address)
        return org.MAILBOXES[0] if address.casefold() == "alice@example.test" else None

    cache = RecipientCache(lookup, max_entries=2)
    v1 = cache.bound(1)
    assert (await v1("alice@example.test")).id == 1
    assert (await v1("ALICE@example.test")).id == 1
    assert await v1("nobody@example.test") is None
    assert await v1("nobody@example.test") is None
    assert len(calls) == 2
    await v1("third@example.test")                 # evicts the oldest entry
    await v1("alice@example.test")
    assert len(calls) == 4
    v2 = cache.bound(2)
    await v2("alice@example.test")                 # a new version: looked up again
    assert len(calls) == 5
    await v1("alice@example.test")                 # an older session never fills the cache
    await v1("alice@example.test")
    assert len(calls) == 7
