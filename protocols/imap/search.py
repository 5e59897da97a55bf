"""SEARCH and UID SEARCH (RFC 9051 §6.4.4, RFC 3501 §6.4.4) with CHARSET UTF-8,
CONDSTORE MODSEQ (RFC 7162 §3.1.5), ESEARCH result options (RFC 4731) and SEARCHRES
(RFC 5182).

Role: parse the search keys into a small tree; hand the conjunction of what the
database evaluates well (UID and sequence ranges, system flags, internal date, size,
modseq) to ``store.imap_search.search``; test the rest (keywords, addresses, subject,
sent date, header fields, body text) in Python on the candidates only, reading their
summaries, header prefixes or bodies only when a key needs them.

Invariants: text matching is a case-insensitive substring test on decoded text
(casefold; RFC 9051 §6.4.4); ``RECENT``/``NEW`` match nothing (no session here ever
sees a message as recent), ``OLD`` everything; nesting is bounded by the parser.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.mime.headers import split_fields, to_text, unfold
from gateway.mime.summary import MessageSummary
from gateway.mime.words import decode_charset, decode_words
from gateway.store.models import SYSTEM_FLAGS, Message
from gateway.store.search import SearchFilter
from protocols.imap import limits
from protocols.imap.fetch import decode_cte
from protocols.imap.messages import MessageCommands
from protocols.imap.parser import Cursor, ParseError
from protocols.imap.selected import compress
from protocols.imap.state import No

DAY = 86400
_FLAG_KEYS = {"ANSWERED": ("\\answered", True), "DELETED": ("\\deleted", True),
              "DRAFT": ("\\draft", True), "FLAGGED": ("\\flagged", True),
              "SEEN": ("\\seen", True), "UNANSWERED": ("\\answered", False),
              "UNDELETED": ("\\deleted", False), "UNDRAFT": ("\\draft", False),
              "UNFLAGGED": ("\\flagged", False), "UNSEEN": ("\\seen", False)}
_TEXT_KEYS = ("BCC", "BODY", "CC", "FROM", "SUBJECT", "TEXT", "TO")
_DATE_KEYS = ("BEFORE", "ON", "SINCE", "SENTBEFORE", "SENTON", "SENTSINCE")
_RETURN = ("MIN", "MAX", "COUNT", "ALL", "SAVE")

Node = tuple[Any, ...]


@dataclass
class Needs:
    summary: bool = False
    header: bool = False
    body: bool = False


@dataclass
class Doc:
    """What a candidate message offers the residual test."""

    msg: Message
    summary: MessageSummary | None = None
    content: bytes = b""
    _texts: dict[str, str | None] = field(default_factory=dict)


def parse_keys(cur: Cursor, sel_ranges: Callable[[Any, bool], list[tuple[int, int]]]
               ) -> list[Node]:
    keys = [parse_key(cur, sel_ranges)]
    while cur.maybe_sp():
        keys.append(parse_key(cur, sel_ranges))
        if len(keys) > limits.MAX_ITEMS:
            raise ParseError("too many search keys")
    return keys


def parse_key(cur: Cursor, sel_ranges: Callable[[Any, bool], list[tuple[int, int]]]
              ) -> Node:
    c = cur.peek()
    if c == 0x28:
        return ("and", cur.paren_list(lambda: _and(cur, sel_ranges)))
    if c is not None and (0x30 <= c <= 0x39 or c in (0x2A, 0x24)):
        return ("uids", sel_ranges(cur.sequence_set(), False))
    word = cur.atom().upper()
    if word == "ALL" or word == "OLD":
        return ("all",)
    if word in ("RECENT", "NEW"):
        return ("none",)
    if word in _FLAG_KEYS:
        name, on = _FLAG_KEYS[word]
        return ("flag", SYSTEM_FLAGS[name], on)
    if word in ("KEYWORD", "UNKEYWORD"):
        cur.sp()
        return ("keyword", cur.flag(), word == "KEYWORD")
    if word in _TEXT_KEYS:
        cur.sp()
        return ("text", word, _text(cur))
    if word == "HEADER":
        cur.sp()
        name = cur.astring().decode("ascii", "replace")
        cur.sp()
        return ("text", "HEADER:" + name.casefold(), _text(cur))
    if word in _DATE_KEYS:
        cur.sp()
        return ("date", word, cur.date())
    if word in ("LARGER", "SMALLER"):
        cur.sp()
        return ("size", word, cur.number())
    if word == "UID":
        cur.sp()
        return ("uids", sel_ranges(cur.sequence_set(), True))
    if word == "NOT":
        cur.sp()
        cur.enter()
        try:
            return ("not", parse_key(cur, sel_ranges))
        finally:
            cur.leave()
    if word == "OR":
        cur.sp()
        cur.enter()
        try:
            a = parse_key(cur, sel_ranges)
            cur.sp()
            b = parse_key(cur, sel_ranges)
        finally:
            cur.leave()
        return ("or", a, b)
    if word == "MODSEQ":
        cur.sp()
        if cur.peek() == 0x22:  # entry-name entry-type-req (RFC 7162 §3.1.5)
            cur.quoted()
            cur.sp()
            cur.atom()
            cur.sp()
        return ("modseq", cur.number())
    raise ParseError(f"unknown search key {word}")


def _and(cur: Cursor, sel_ranges: Callable[[Any, bool], list[tuple[int, int]]]) -> Node:
    keys = parse_keys(cur, sel_ranges)
    return keys[0] if len(keys) == 1 else ("and", keys)


def _text(cur: Cursor) -> str:
    try:
        return cur.astring().decode("utf-8").casefold()
    except UnicodeDecodeError:
        raise ParseError("search string is not UTF-8") from None


def split_sql(keys: list[Node]) -> tuple[SearchFilter, list[Node], bool]:
    """The database's part of a conjunction, the residual keys, and whether nothing
    can match (``none``)."""
    kw: dict[str, Any] = {"flags_set": 0, "flags_clear": 0}
    rest: list[Node] = []
    stack = list(keys)
    while stack:
        k = stack.pop(0)
        tag = k[0]
        if tag == "and":
            stack[:0] = k[1]
        elif tag == "all":
            continue
        elif tag == "none":
            return SearchFilter(), [], True
        elif tag == "flag":
            kw["flags_set" if k[2] else "flags_clear"] |= k[1]
        elif tag == "uids" and "uids" not in kw:
            kw["uids"] = k[1]
        elif tag == "date" and k[1] in ("BEFORE", "ON", "SINCE"):
            since, before = kw.get("since"), kw.get("before")
            if k[1] in ("SINCE", "ON"):
                kw["since"] = k[2] if since is None else max(since, k[2])
            if k[1] in ("BEFORE", "ON"):
                end = k[2] + (DAY if k[1] == "ON" else 0)
                kw["before"] = end if before is None else min(before, end)
        elif tag == "size" and k[1] == "LARGER" and "larger" not in kw:
            kw["larger"] = k[2]
        elif tag == "size" and k[1] == "SMALLER" and "smaller" not in kw:
            kw["smaller"] = k[2]
        elif tag == "modseq" and "modseq_min" not in kw:
            kw["modseq_min"] = k[1]
        else:
            rest.append(k)
    if kw["flags_set"] & kw["flags_clear"]:
        return SearchFilter(), [], True
    if "uids" in kw and not kw["uids"]:
        return SearchFilter(), [], True
    return SearchFilter(**kw), rest, False


def needs_of(keys: list[Node], needs: Needs) -> Needs:
    for k in keys:
        tag = k[0]
        if tag in ("and",):
            needs_of(k[1], needs)
        elif tag == "not":
            needs_of([k[1]], needs)
        elif tag == "or":
            needs_of([k[1], k[2]], needs)
        elif tag == "date" and k[1].startswith("SENT"):
            needs.summary = True
        elif tag == "text":
            needs.summary = True
            if k[1].startswith("HEADER:"):
                needs.header = True
            elif k[1] in ("BODY", "TEXT"):
                needs.body = True
    return needs


def _day(ts: float) -> float:
    return float(ts - ts % DAY)


def matches(k: Node, doc: Doc) -> bool:
    tag = k[0]
    m = doc.msg
    if tag == "all":
        return True
    if tag == "none":
        return False
    if tag == "and":
        return all(matches(x, doc) for x in k[1])
    if tag == "not":
        return not matches(k[1], doc)
    if tag == "or":
        return matches(k[1], doc) or matches(k[2], doc)
    if tag == "flag":
        return bool(m.flags & k[1]) == k[2]
    if tag == "keyword":
        return (k[1].casefold() in {x.casefold() for x in m.keywords}) == k[2]
    if tag == "uids":
        return any(lo <= m.uid <= hi for lo, hi in k[1])
    if tag == "size":
        return m.size > k[2] if k[1] == "LARGER" else m.size < k[2]
    if tag == "modseq":
        return m.modseq >= k[1]
    if tag == "date":
        if k[1].startswith("SENT"):
            when = doc.summary.date if doc.summary else None
            if when is None:
                return False
            day = float(calendar.timegm(when.date().timetuple()))
            op = k[1][4:]
        else:
            day, op = _day(m.internal_date), k[1]
        return day < k[2] if op == "BEFORE" else (day == k[2] if op == "ON" else day >= k[2])
    if tag == "text":
        text = _text_of(doc, k[1])
        return text is not None and k[2] in text
    raise AssertionError(tag)


def _text_of(doc: Doc, what: str) -> str | None:
    """Decoded, casefolded text a key searches; None for an absent header field."""
    if what in doc._texts:
        return doc._texts[what]
    s = doc.summary
    text = ""
    if s is not None:
        if what == "FROM":
            text = s.from_
        elif what == "TO":
            text = s.to
        elif what == "CC":
            text = s.cc
        elif what == "BCC":
            text = s.bcc
        elif what == "SUBJECT":
            text = s.subject
        elif what.startswith("HEADER:"):
            name = what[7:]
            values = [decode_words(to_text(unfold(v)))
                      for n, v in split_fields(doc.content, 0, s.header_size) if n == name]
            if not values:  # RFC 9051 §6.4.4: HEADER f "" matches messages with f
                doc._texts[what] = None
                return None
            text = "\n".join(values)
        elif what in ("BODY", "TEXT"):
            text = _body_text(doc.content, s)
            if what == "TEXT":
                text = decode_words(to_text(doc.content[:s.header_size])) + "\n" + text
    text = text.casefold()
    doc._texts[what] = text
    return text


def _body_text(content: bytes, s: MessageSummary) -> str:
    """Decoded text of the message's text/* leaves (transfer encoding and charset)."""
    out: list[str] = []
    for part in s.parts:
        if part.is_multipart or not part.content_type.startswith("text/"):
            continue
        raw = decode_cte(content[part.body_start:part.body_end], part.encoding) or b""
        out.append(decode_charset(raw, part.params.get("charset", "us-ascii")))
    if not s.parts:
        out.append(to_text(content[s.body_offset:]))
    return "\n".join(out)


class SearchCommands(MessageCommands):
    async def do_search(self, tag: str, cur: Cursor, uid: bool) -> str:
        sel = self.sel
        cur.sp()
        returns: list[str] | None = None
        if cur.accept(b"RETURN "):
            returns = [r.upper() for r in cur.paren_list(cur.atom)] or ["ALL"]
            if any(r not in _RETURN for r in returns):
                raise ParseError("unknown RETURN option")
            cur.sp()
        if cur.accept(b"CHARSET "):
            charset = cur.astring().decode("ascii", "replace").upper()
            if charset not in ("UTF-8", "US-ASCII"):
                raise No("Unsupported charset", "BADCHARSET (UTF-8 US-ASCII)")
            cur.sp()

        def ranges(seqset: Any, is_uid: bool) -> list[tuple[int, int]]:
            if not is_uid and not seqset.saved:
                n = sel.exists
                out = []
                for r in seqset.ranges:
                    lo = n if r.low is None else r.low
                    hi = n if r.high is None else r.high
                    lo, hi = max(1, min(lo, hi)), min(n, max(lo, hi))
                    if lo <= hi:
                        out.append((sel.uids[lo - 1], sel.uids[hi - 1]))
                return out
            return sel.resolve(seqset, uid=True)

        keys = parse_keys(cur, ranges)
        cur.end()
        modseq_used = _uses_modseq(keys)
        if modseq_used:
            self.condstore = True
        flt, rest, nothing = split_sql(keys)
        found: list[Message] = []
        if not nothing and sel.exists:
            needs = needs_of(rest, Needs())
            cands = await self.store.imap_search.search(sel.folder.id, flt,
                                                        with_summary=needs.summary)
            cands = [m for m in cands if sel.contains(m.uid)]
            found = await self._residual(cands, rest, needs) if rest else cands
        uids = [m.uid for m in found]
        highest = max((m.modseq for m in found), default=0)
        if returns is None and self.rev2:
            returns = ["ALL"]  # RFC 9051 §6.4.4: IMAP4rev2 answers with ESEARCH
        if returns is None:
            numbers = uids if uid else [s for s in (sel.seq_of(u) for u in uids) if s]
            tail = f" (MODSEQ {highest})" if modseq_used and found else ""
            self.untagged("SEARCH" + "".join(f" {n}" for n in numbers) + tail)
            return "SEARCH completed"
        self._esearch(tag, uid, uids, returns, highest if modseq_used else 0)
        return "SEARCH completed"

    def _esearch(self, tag: str, uid: bool, uids: list[int], returns: list[str],
                 highest: int) -> None:
        """RFC 4731 ESEARCH; SAVE keeps the result for ``$`` (RFC 5182)."""
        sel = self.sel
        if "SAVE" in returns:
            from gateway.store.messages import uid_ranges
            sel.saved = uid_ranges(uids)
            if returns == ["SAVE"]:
                return
        numbers = uids if uid else [s for s in (sel.seq_of(u) for u in uids) if s]
        parts = [f'(TAG "{tag}")'] + (["UID"] if uid else [])
        if numbers:
            if "MIN" in returns:
                parts.append(f"MIN {min(numbers)}")
            if "MAX" in returns:
                parts.append(f"MAX {max(numbers)}")
            if "ALL" in returns:
                parts.append(f"ALL {compress(numbers)}")
        if "COUNT" in returns:
            parts.append(f"COUNT {len(numbers)}")
        if highest and numbers:
            parts.append(f"MODSEQ {highest}")
        self.untagged("ESEARCH " + " ".join(parts))

    async def _residual(self, cands: list[Message], rest: list[Node],
                        needs: Needs) -> list[Message]:
        out: list[Message] = []
        for start in range(0, len(cands), limits.FETCH_BATCH):
            batch = cands[start:start + limits.FETCH_BATCH]
            summaries = {m.id: MessageSummary.from_json(m.summary_json) for m in batch
                         if m.summary_json is not None}
            contents: dict[int, bytes] = {}
            if needs.body or needs.header:
                limit = None if needs.body else max(
                    (s.header_size for s in summaries.values()), default=0)
                contents = await self.store.imap_search.bodies([m.id for m in batch],
                                                               limit=limit)
            for m in batch:
                doc = Doc(m, summaries.get(m.id), contents.get(m.id, b""))
                if all(matches(k, doc) for k in rest):
                    out.append(m)
        return out


def _uses_modseq(keys: list[Node]) -> bool:
    for k in keys:
        if k[0] == "modseq":
            return True
        if k[0] == "and" and _uses_modseq(k[1]):
            return True
        if k[0] == "not" and _uses_modseq([k[1]]):
            return True
        if k[0] == "or" and _uses_modseq([k[1], k[2]]):
            return True
    return False
