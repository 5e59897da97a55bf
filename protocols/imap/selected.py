"""The selected mailbox as one session sees it (RFC 9051 §2.3.1.2, §7.4.1 of RFC 3501).

Role: keep the session's message-sequence-number map (an ``array`` of UIDs, 4 octets a
message: 40 KiB for 10,000 messages), convert sequence sets into UID ranges, and turn
the store's change feed into the untagged EXISTS / EXPUNGE / VANISHED / FETCH responses
this session owes its client.

Invariants:
- ``uids`` ascends; the view changes only when ``apply`` emits the matching responses,
  so the client's numbering and ours never diverge;
- expunges learned while they may not be announced (during FETCH, STORE and SEARCH,
  RFC 3501 §7.4.1) are kept pending; the messages keep their numbers until then;
- store UIDs inside ``[uids[0], uids[-1]]`` are always in the view (new messages get
  UIDs above ``uidnext``), so a sequence range maps to one UID range.
"""

from __future__ import annotations

import bisect
from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field

from gateway.store.messages import uid_ranges
from gateway.store.models import Change, Folder
from protocols.imap.parser import ParseError, SequenceSet

UidRangeList = list[tuple[int, int]]


@dataclass
class Updates:
    """What one ``apply`` learned, to be written by the session."""

    expunged_seqs: list[int] = field(default_factory=list)  # in emission order
    vanished: list[int] = field(default_factory=list)  # UIDs (QRESYNC)
    exists: int | None = None
    flag_uids: set[int] = field(default_factory=set)
    folder_gone: bool = False


class SelectedMailbox:
    """See the module docstring."""

    def __init__(self, folder: Folder, uids: Iterable[int], cursor: int, *,
                 readonly: bool) -> None:
        self.folder = folder
        self.readonly = readonly
        self.uids = array("I", uids)  # a copy: snapshots are shared
        self.cursor = cursor
        self.pending_expunged: set[int] = set()
        self.pending_flags: set[int] = set()
        self.pending_exists = False
        self.own_modseqs: set[int] = set()
        self.saved: UidRangeList = []  # RFC 5182 SEARCHRES

    # -- numbering ---------------------------------------------------------------------

    @property
    def exists(self) -> int:
        return len(self.uids)

    def seq_of(self, uid: int) -> int | None:
        i = bisect.bisect_left(self.uids, uid)
        if i < len(self.uids) and self.uids[i] == uid:
            return i + 1
        return None

    def contains(self, uid: int) -> bool:
        return self.seq_of(uid) is not None

    def resolve(self, seqset: SequenceSet, *, uid: bool) -> UidRangeList:
        """UID ranges named by a sequence set (``uid``: UID set), clipped to the view.
        ``*`` is the last message (RFC 9051 §9: for UIDs, the largest UID in use)."""
        if seqset.saved:
            return list(self.saved)
        n = len(self.uids)
        out: UidRangeList = []
        if uid:
            top = self.uids[-1] if n else 0
            for r in seqset.ranges:
                low = top if r.low is None else r.low
                high = top if r.high is None else r.high
                low, high = min(low, high), min(max(low, high), top)
                if low > high:
                    if r.low is not None and r.high is not None:
                        continue  # entirely above the view
                    low = high = top  # RFC 9051 §6.4.8: "n:*" always includes the last
                if n:
                    out.append((max(low, 1), high))
            return out
        for r in seqset.ranges:
            low = n if r.low is None else r.low
            high = n if r.high is None else r.high
            low, high = min(low, high), max(low, high)
            if low < 1 or high > n:
                raise ParseError("message sequence number out of range")
            out.append((self.uids[low - 1], self.uids[high - 1]))
        return out

    # -- change feed -------------------------------------------------------------------

    def note(self, changes: list[Change]) -> None:
        """Record changes of this folder; nothing is announced yet."""
        last = self.uids[-1] if self.uids else 0
        fid = self.folder.id
        for c in changes:
            self.cursor = max(self.cursor, c.modseq)
            if c.folder_id != fid or c.uid is None:
                if c.folder_id == fid and c.kind == "folder_deleted":
                    self.pending_expunged.add(-1)  # marker: the folder went away
                # a rename keeps the folder id, UIDVALIDITY and UIDs: nothing to say
                continue
            if c.kind == "message_added":
                if c.uid > last:
                    self.uids.append(c.uid)
                    last = c.uid
                    self.pending_exists = True
            elif c.kind == "expunged":
                if self.contains(c.uid):
                    self.pending_expunged.add(c.uid)
            elif c.kind == "flags_changed" and c.modseq not in self.own_modseqs:
                self.pending_flags.add(c.uid)

    def take(self, *, allow_expunge: bool, qresync: bool) -> Updates:
        """Announce what may be announced now; see RFC 3501 §7.4.1."""
        up = Updates()
        if -1 in self.pending_expunged:
            self.pending_expunged.discard(-1)
            up.folder_gone = True
        if allow_expunge and self.pending_expunged:
            gone = sorted(self.pending_expunged)
            self.pending_expunged.clear()
            seqs = [s for s in (self.seq_of(u) for u in gone) if s is not None]
            if qresync:
                up.vanished = gone
            else:
                up.expunged_seqs = [s - i for i, s in enumerate(seqs)]
            drop = set(gone)
            self.uids = array("I", (u for u in self.uids if u not in drop))
            self.pending_flags -= drop
            up.exists = None
        if self.pending_exists:
            up.exists = len(self.uids)
            self.pending_exists = False
        if self.pending_flags:
            up.flag_uids = {u for u in self.pending_flags if u not in self.pending_expunged}
            self.pending_flags.clear()
        return up

    def remove_now(self, uids: list[int]) -> list[int]:
        """Our own EXPUNGE/MOVE: drop ``uids``; returns the EXPUNGE sequence numbers in
        emission order (each relative to the previous removals)."""
        drop = set(uids)
        seqs = sorted(s for s in (self.seq_of(u) for u in drop) if s is not None)
        self.uids = array("I", (u for u in self.uids if u not in drop))
        self.pending_expunged -= drop
        self.pending_flags -= drop
        return [s - i for i, s in enumerate(seqs)]

    def uid_set_text(self, uids: list[int]) -> str:
        return compress(uids)


def compress(uids: list[int]) -> str:
    """``[1, 2, 3, 7]`` -> ``"1:3,7"`` (RFC 9051 sequence-set syntax)."""
    return ",".join(f"{a}" if a == b else f"{a}:{b}" for a, b in uid_ranges(uids))
