"""FETCH and UID FETCH (RFC 9051 §6.4.5, RFC 3501 §6.4.5), with BINARY (RFC 3516),
CONDSTORE CHANGEDSINCE/MODSEQ and QRESYNC VANISHED (RFC 7162).

Role: parse fetch attributes into :class:`FetchItem` values, read what they need from
the store - message rows, the stored ``MessageSummary`` (ENVELOPE, BODYSTRUCTURE, part
offsets computed once at delivery; never re-parsed here) and only the byte prefix of
each message that the requested sections reach - and write one ``* n FETCH`` per message.

Invariants: ``FETCH 1:* (UID FLAGS)`` reads message rows only; bodies are read in
batches of ``limits.FETCH_BATCH`` and no further than the largest offset requested;
BODY[...] (not PEEK) sets ``\\Seen`` in a read-write mailbox and reports the new FLAGS.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import quopri
import re
from dataclasses import dataclass
from typing import Any

from gateway.mime.summary import MessageSummary
from gateway.store.messages import uid_ranges
from gateway.store.models import Message
from protocols.imap import limits, wire
from protocols.imap.mailboxes import MailboxCommands
from protocols.imap.parser import Cursor, ParseError
from protocols.imap.selected import compress
from protocols.imap.state import No

SIMPLE = ("UID", "FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODYSTRUCTURE",
          "BODY", "MODSEQ", "RFC822", "RFC822.HEADER", "RFC822.TEXT")
FLAG_ITEMS = frozenset({"UID", "FLAGS", "MODSEQ"})
MACROS = {"ALL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"),
          "FAST": ("FLAGS", "INTERNALDATE", "RFC822.SIZE"),
          "FULL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY")}
_SECTION = re.compile(r"^(?:\d+(?:\.\d+)*)?(?:(?:^|\.)(?:HEADER|HEADER\.FIELDS|"
                      r"HEADER\.FIELDS\.NOT|TEXT|MIME))?$")


@dataclass(frozen=True)
class FetchItem:
    """One fetch attribute. ``kind``: a SIMPLE name, "BODY[]", "BINARY[]" or
    "BINARY.SIZE"; ``section`` as in RFC 9051 §6.4.5 without the field list."""

    kind: str
    section: str = ""
    fields: tuple[str, ...] = ()
    partial: tuple[int, int] | None = None
    peek: bool = True

    @property
    def needs_summary(self) -> bool:
        return self.kind in ("ENVELOPE", "BODYSTRUCTURE", "BODY", "RFC822.HEADER",
                             "RFC822.TEXT", "BINARY.SIZE") or (
            self.kind in ("BODY[]", "BINARY[]") and self.section != "")

    @property
    def needs_content(self) -> bool:
        return self.kind in ("RFC822", "RFC822.HEADER", "RFC822.TEXT", "BODY[]", "BINARY[]",
                             "BINARY.SIZE")

    def label(self) -> str:
        if self.kind in ("BODY[]", "BINARY[]", "BINARY.SIZE"):
            head = {"BODY[]": "BODY", "BINARY[]": "BINARY", "BINARY.SIZE": "BINARY.SIZE"}
            text = self.section
            if self.fields:
                text += " (" + " ".join(self.fields) + ")"
            origin = f"<{self.partial[0]}>" if self.partial else ""
            return f"{head[self.kind]}[{text}]{origin}"
        return self.kind


def parse_item(cur: Cursor) -> FetchItem:
    word = cur.atom(stop=b"[").upper()
    if word in ("BODY", "BODY.PEEK", "BINARY", "BINARY.PEEK", "BINARY.SIZE") \
            and cur.peek() == 0x5B:
        cur.expect(b"[")
        section = cur.atom(stop=b"[").upper() if cur.peek() != 0x5D else ""
        fields: tuple[str, ...] = ()
        if section.endswith("HEADER.FIELDS") or section.endswith("HEADER.FIELDS.NOT"):
            cur.sp()
            fields = tuple(f.decode("ascii", "replace")
                           for f in cur.paren_list(cur.astring))
            if not fields:
                raise ParseError("empty header field list")
        cur.expect(b"]")
        if not _SECTION.match(section) or section.startswith("MIME"):
            raise ParseError("bad section")
        if word.startswith("BINARY") and not re.match(r"^(\d+(\.\d+)*)?$", section):
            raise ParseError("BINARY takes a part number only")
        partial = None
        if cur.accept(b"<"):
            start = cur.number()
            cur.expect(b".")
            length = cur.nz_number()
            cur.expect(b">")
            partial = (start, length)
            if word == "BINARY.SIZE":
                raise ParseError("BINARY.SIZE takes no partial")
        kind = "BODY[]" if word.startswith("BODY") else (
            "BINARY.SIZE" if word == "BINARY.SIZE" else "BINARY[]")
        return FetchItem(kind, section, fields, partial, peek=word.endswith(".PEEK")
                         or kind == "BINARY.SIZE")
    if word not in SIMPLE:
        raise ParseError(f"unknown fetch attribute {word}")
    return FetchItem(word, peek=word not in ("RFC822", "RFC822.TEXT"))


def parse_items(cur: Cursor) -> list[FetchItem]:
    if cur.peek() == 0x28:
        items = cur.paren_list(lambda: parse_item(cur))
        if not items:
            raise ParseError("empty fetch attribute list")
        return items
    save = (cur.seg, cur.pos)
    word = cur.atom().upper()
    if word in MACROS:
        return [FetchItem(w) for w in MACROS[word]]
    cur.seg, cur.pos = save
    return [parse_item(cur)]


def strip_extensions(bs: list[Any]) -> list[Any]:
    """BODYSTRUCTURE without extension data = BODY (RFC 9051 §7.5.2)."""
    if bs and isinstance(bs[0], list):
        parts = []
        i = 0
        while i < len(bs) and isinstance(bs[i], list):
            parts.append(strip_extensions(bs[i]))
            i += 1
        return [*parts, bs[i] if i < len(bs) else "mixed"]
    kind = str(bs[0]).lower() if bs else ""
    sub = str(bs[1]).lower() if len(bs) > 1 else ""
    if kind == "text":
        return bs[:8]
    if kind == "message" and sub in ("rfc822", "global") and len(bs) >= 10:
        return [*bs[:8], strip_extensions(bs[8]), bs[9]]
    return bs[:7]


def header_fields(header: bytes, names: tuple[str, ...], *, exclude: bool) -> bytes:
    """The header fields named (or all but those, ``exclude``) plus the blank line
    (RFC 9051 §6.4.5 HEADER.FIELDS / HEADER.FIELDS.NOT)."""
    wanted = {n.casefold() for n in names}
    out: list[bytes] = []
    keep = False
    for line in header.split(b"\r\n"):
        if not line:
            continue
        if line[:1] in (b" ", b"\t"):
            if keep:
                out.append(line)
            continue
        name = line.split(b":", 1)[0].strip().decode("ascii", "replace").casefold()
        keep = (name in wanted) != exclude
        if keep:
            out.append(line)
    return b"".join(x + b"\r\n" for x in out) + b"\r\n"


def decode_cte(data: bytes, encoding: str) -> bytes | None:
    """Undo a Content-Transfer-Encoding (RFC 3516 §4.2); None when unknown."""
    enc = encoding.lower()
    if enc in ("7bit", "8bit", "binary", ""):
        return data
    if enc == "base64":
        try:
            return base64.b64decode(re.sub(rb"[^A-Za-z0-9+/=]", b"", data) + b"==")
        except (binascii.Error, ValueError):
            return None
    if enc == "quoted-printable":
        return quopri.decodestring(data)
    return None


def literal(data: bytes, *, binary: bool = False) -> bytes:
    if binary and b"\x00" in data:
        return b"~{%d}\r\n" % len(data) + data  # RFC 3516 literal8
    return b"{%d}\r\n" % len(data) + data


class FetchCommands(MailboxCommands):
    async def do_fetch(self, tag: str, cur: Cursor, uid: bool) -> str:
        sel = self.sel
        cur.sp()
        seqset = cur.sequence_set()
        cur.sp()
        items = parse_items(cur)
        changed_since: int | None = None
        vanished = False
        if cur.maybe_sp():
            def modifier() -> str:
                nonlocal changed_since, vanished
                word = cur.atom().upper()
                if word == "CHANGEDSINCE":
                    cur.sp()
                    changed_since = cur.number()
                elif word == "VANISHED" and uid and self.qresync:
                    vanished = True
                else:
                    raise ParseError(f"unknown FETCH modifier {word}")
                return word
            cur.paren_list(modifier)
        cur.end()
        if vanished and changed_since is None:
            raise ParseError("VANISHED needs CHANGEDSINCE")
        if changed_since is not None or any(i.kind == "MODSEQ" for i in items):
            self.condstore = True
        # UID FETCH, and every FETCH once QRESYNC is on (RFC 7162 §3.2.4), reports UID.
        if (uid or self.qresync) and not any(i.kind == "UID" for i in items):
            items.insert(0, FetchItem("UID"))
        if changed_since is not None and not any(i.kind == "MODSEQ" for i in items):
            items.append(FetchItem("MODSEQ"))
        ranges = sel.resolve(seqset, uid=uid)
        if vanished and changed_since is not None:
            gone = await self.store.mail.vanished(sel.folder.id, changed_since)
            wanted = [u for u in gone if any(lo <= u <= hi for lo, hi in ranges)]
            if wanted:
                self.untagged(f"VANISHED (EARLIER) {compress(wanted)}")
        if not ranges:
            return "FETCH completed"
        if changed_since is None and all(i.kind in FLAG_ITEMS for i in items):
            await self._fetch_flags(ranges, items, uid)
            return "FETCH completed"
        with_summary = any(i.needs_summary for i in items)
        msgs = [m for m in await self.store.mail.fetch(
            sel.folder.id, ranges, changed_since=changed_since, with_summary=with_summary)
            if sel.contains(m.uid)]
        if not sel.readonly and any(not i.peek for i in items):
            msgs = await self._mark_seen(msgs, items)
        need_content = any(i.needs_content for i in items)
        for start in range(0, len(msgs), limits.FETCH_BATCH):
            batch = msgs[start:start + limits.FETCH_BATCH]
            summaries = {m.id: MessageSummary.from_json(m.summary_json) for m in batch
                         if m.summary_json is not None}
            contents: dict[int, bytes] = {}
            if need_content:
                reach = max(self._reach(m, summaries.get(m.id), items) for m in batch)
                contents = await self.store.imap_search.bodies(
                    [m.id for m in batch], limit=reach)
            for m in batch:
                seq = sel.seq_of(m.uid)
                if seq is None:
                    continue
                body = b" ".join(self._item(m, summaries.get(m.id), contents.get(m.id, b""),
                                            item) for item in items)
                self.conn.write(b"* %d FETCH (" % seq + body + b")\r\n")
            await self.conn.flush()
        return "FETCH completed"

    async def _fetch_flags(self, ranges: list[tuple[int, int]], items: list[FetchItem],
                           uid: bool) -> None:
        """UID/FLAGS/MODSEQ only (what clients send on opening a folder): from the
        folder snapshot, rendered once per snapshot for the whole folder."""
        sel = self.sel
        snap = await self.ctx.snapshots.get(self.store, sel.folder.id)
        with_uid = any(i.kind == "UID" for i in items)
        with_modseq = any(i.kind == "MODSEQ" for i in items)
        same_view = snap.uids == sel.uids
        if same_view and with_uid and any(i.kind == "FLAGS" for i in items) \
                and len(items) == 2 + with_modseq and sel.uids \
                and ranges == [(sel.uids[0], sel.uids[-1])]:
            self.conn.write(snap.render_all(uid=True, modseq=with_modseq))
            return
        suids = snap.uids
        for low, high in ranges:
            start = bisect.bisect_left(suids, low)
            end = bisect.bisect_right(suids, high)
            for i in range(start, end):
                u = suids[i]
                seq = i + 1 if same_view else sel.seq_of(u)
                if seq is None:
                    continue
                parts = []
                for item in items:
                    if item.kind == "UID":
                        parts.append(b"UID %d" % u)
                    elif item.kind == "FLAGS":
                        parts.append(b"FLAGS " + snap.flag_text(i))
                    else:
                        parts.append(b"MODSEQ (%d)" % snap.modseqs[i])
                self.conn.write(b"* %d FETCH (" % seq + b" ".join(parts) + b")\r\n")

    async def _mark_seen(self, msgs: list[Message], items: list[FetchItem]) -> list[Message]:
        """RFC 9051 §6.4.5: BODY[...] sets \\Seen; the response then includes FLAGS."""
        unseen = [m.uid for m in msgs if not m.seen]
        if not unseen:
            return msgs
        update = await self.store.mail.store_flags(self.sel.folder.id, uid_ranges(unseen),
                                                   "add", ["\\Seen"])
        changed = {m.uid: m for m in update.updated}
        if update.updated:
            self.sel.own_modseqs.add(update.updated[0].modseq)
        if not any(i.kind == "FLAGS" for i in items):
            items.append(FetchItem("FLAGS"))
        out = []
        for m in msgs:
            new = changed.get(m.uid)
            out.append(m if new is None else Message(
                new.id, new.mailbox_id, new.folder_id, new.uid, new.content_id, new.flags,
                new.keywords, new.internal_date, new.size, new.modseq, m.summary_json))
        return out

    @staticmethod
    def _reach(m: Message, summary: MessageSummary | None, items: list[FetchItem]) -> int:
        """How many leading octets of the message the items need."""
        reach = 0
        for item in items:
            if item.kind in ("RFC822", "RFC822.TEXT") or item.kind in ("BINARY[]",
                                                                       "BINARY.SIZE"):
                return m.size
            if item.kind == "RFC822.HEADER":
                reach = max(reach, summary.header_size if summary else m.size)
            elif item.kind == "BODY[]":
                rng = (0, m.size) if item.section == "" or summary is None \
                    else summary.section_range(item.section)
                if rng is None:
                    continue
                end = rng[1]
                if item.partial and not item.fields:
                    end = min(end, rng[0] + item.partial[0] + item.partial[1])
                reach = max(reach, end)
        return reach

    def _item(self, m: Message, summary: MessageSummary | None, content: bytes,
              item: FetchItem) -> bytes:
        kind = item.kind
        if kind == "UID":
            return b"UID %d" % m.uid
        if kind == "FLAGS":
            return b"FLAGS " + wire.flag_list(m.flag_names)
        if kind == "INTERNALDATE":
            return b"INTERNALDATE " + wire.internal_date(m.internal_date)
        if kind == "RFC822.SIZE":
            return b"RFC822.SIZE %d" % m.size
        if kind == "MODSEQ":
            return b"MODSEQ (%d)" % m.modseq
        if summary is None and item.needs_summary:
            raise No("Message summary unavailable", "SERVERBUG")
        if kind == "ENVELOPE":
            assert summary is not None
            return b"ENVELOPE " + wire.sexp(summary.envelope)
        if kind == "BODYSTRUCTURE":
            assert summary is not None
            return b"BODYSTRUCTURE " + wire.sexp(summary.bodystructure)
        if kind == "BODY":
            assert summary is not None
            return b"BODY " + wire.sexp(strip_extensions(summary.bodystructure))
        if kind == "RFC822":
            return b"RFC822 " + literal(content)
        if kind == "RFC822.HEADER":
            assert summary is not None
            return b"RFC822.HEADER " + literal(content[:summary.header_size])
        if kind == "RFC822.TEXT":
            assert summary is not None
            return b"RFC822.TEXT " + literal(content[summary.body_offset:])
        if kind == "BODY[]":
            data = self._section(m, summary, content, item)
            if item.partial:
                data = data[item.partial[0]:item.partial[0] + item.partial[1]]
            return item.label().encode() + b" " + literal(data)
        # BINARY[] / BINARY.SIZE (RFC 3516)
        data = self._binary(summary, content, item)
        if kind == "BINARY.SIZE":
            return item.label().encode() + b" %d" % len(data)
        if item.partial:
            data = data[item.partial[0]:item.partial[0] + item.partial[1]]
        return item.label().encode() + b" " + literal(data, binary=True)

    @staticmethod
    def _section(m: Message, summary: MessageSummary | None, content: bytes,
                 item: FetchItem) -> bytes:
        if item.section == "":
            return content[:m.size]
        assert summary is not None
        rng = summary.section_range(item.section)
        if rng is None:
            return b""
        data = content[rng[0]:rng[1]]
        if item.fields:
            return header_fields(data, item.fields, exclude=item.section.endswith(".NOT"))
        return data

    @staticmethod
    def _binary(summary: MessageSummary | None, content: bytes, item: FetchItem) -> bytes:
        if item.section == "":
            return content
        assert summary is not None
        part = summary.part(item.section)
        if part is None:
            return b""
        if part.is_multipart:
            return content[part.body_start:part.body_end]
        decoded = decode_cte(content[part.body_start:part.body_end], part.encoding)
        if decoded is None:
            raise No("Unknown Content-Transfer-Encoding", "UNKNOWN-CTE")
        return decoded
