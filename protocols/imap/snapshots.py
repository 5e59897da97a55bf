"""A per-process cache of each folder's UID/flags map, valid while its modseq is.

Role: SELECT and ``FETCH 1:* (UID FLAGS)`` - what every client sends on opening a
folder - need every message's UID and flags. Loading them costs time proportional to
the folder; this cache keeps them, keyed by ``(folder id, highest_modseq)``, so a
repeat costs one folder-row read (O(1)) while nothing changed. Every change to a
folder's messages (append, flags, expunge, rename) sets its ``highest_modseq`` in the
same transaction (docs/store.md), so comparing it with the store's current value is a
complete validity test that works across processes and nodes (ARCHITECTURE.md:
in-process caches are fine when they can be invalidated across processes).

Invariants: a snapshot is immutable once built (sessions copy the UID array); the
cache holds at most ``MAX_FOLDERS`` folders and ``MAX_MESSAGES`` messages in total,
least recently used first out; compact arrays (UID 4 octets, flags 1, modseq 8).
"""

from __future__ import annotations

from array import array
from collections import OrderedDict
from dataclasses import dataclass, field

from gateway.store import Store
from gateway.store.models import FLAG_NAMES, Folder

MAX_FOLDERS = 256
MAX_MESSAGES = 2_000_000
MIN_MESSAGES = 256  # smaller folders are cheap to read: not cached


@dataclass
class Snapshot:
    folder: Folder
    uids: array[int]
    flags: array[int]
    modseqs: array[int]
    keywords: dict[int, str]  # index -> space-separated keywords (sparse)
    rendered: dict[tuple[bool, bool], bytes] = field(default_factory=dict)

    def flag_text(self, i: int) -> bytes:
        return flag_bytes(self.flags[i], self.keywords.get(i, ""))

    def render_all(self, *, uid: bool, modseq: bool) -> bytes:
        """``* n FETCH (UID u FLAGS (...) [MODSEQ (m)])`` for every message, n = i + 1,
        built once per snapshot and shape."""
        key = (uid, modseq)
        cached = self.rendered.get(key)
        if cached is None:
            cached = b"".join(render_line(i + 1, self.uids[i], self.flag_text(i),
                                          self.modseqs[i] if modseq else None, with_uid=uid)
                              for i in range(len(self.uids)))
            self.rendered[key] = cached
        return cached


_FLAG_CACHE: dict[tuple[int, str], bytes] = {}


def flag_bytes(bits: int, keywords: str) -> bytes:
    key = (bits, keywords)
    out = _FLAG_CACHE.get(key)
    if out is None:
        names = [name for bit, name in FLAG_NAMES.items() if bits & bit] + keywords.split()
        out = ("(" + " ".join(names) + ")").encode("utf-8")
        if len(_FLAG_CACHE) < 4096:
            _FLAG_CACHE[key] = out
    return out


def render_line(seq: int, uid: int, flags: bytes, modseq: int | None, *,
                with_uid: bool) -> bytes:
    """One untagged FETCH of UID/FLAGS/MODSEQ (RFC 9051 §7.5.2)."""
    head = b"* %d FETCH (UID %d FLAGS " % (seq, uid) if with_uid \
        else b"* %d FETCH (FLAGS " % seq
    tail = b" MODSEQ (%d))\r\n" % modseq if modseq is not None else b")\r\n"
    return head + flags + tail


class FolderSnapshots:
    """See the module docstring."""

    def __init__(self) -> None:
        self._cache: OrderedDict[int, Snapshot] = OrderedDict()
        self._messages = 0

    async def get(self, store: Store, folder_id: int) -> Snapshot:
        """The folder's current snapshot: cached while its modseq is unchanged."""
        cached = self._cache.get(folder_id)
        if cached is not None:
            folder = await store.mail.get_folder(folder_id)
            if folder.highest_modseq == cached.folder.highest_modseq \
                    and folder.uidvalidity == cached.folder.uidvalidity:
                self._cache.move_to_end(folder_id)
                cached.folder = folder
                return cached
        folder, rows = await store.imap_search.flag_snapshot(folder_id)
        snap = Snapshot(folder=folder, uids=array("I", (r[0] for r in rows)),
                        flags=array("B", (r[1] & 0xFF for r in rows)),
                        modseqs=array("Q", (r[3] for r in rows)),
                        keywords={i: r[2] for i, r in enumerate(rows) if r[2]})
        self._put(folder_id, snap)
        return snap

    def _put(self, folder_id: int, snap: Snapshot) -> None:
        old = self._cache.pop(folder_id, None)
        if old is not None:
            self._messages -= len(old.uids)
        if len(snap.uids) < MIN_MESSAGES:
            return
        self._cache[folder_id] = snap
        self._messages += len(snap.uids)
        while self._cache and (len(self._cache) > MAX_FOLDERS
                               or self._messages > MAX_MESSAGES):
            _fid, gone = self._cache.popitem(last=False)
            self._messages -= len(gone.uids)
