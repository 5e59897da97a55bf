"""Short-lived cache of verified password credentials.

Role: let protocols that send credentials on every request (HTTP Basic for ActiveSync
and web services) skip argon2 when the same login and password were verified moments
ago.

Invariants:
- The password is never stored: entries are keyed by HMAC-SHA256 of (login, password)
  under a random per-process key, and hold only the mailbox id and the account's
  ``credential_version`` at verification time.
- A hit counts only if the account's current ``credential_version`` (read fresh from
  the directory for this very attempt) equals the cached one, so a password change on
  any node invalidates every process's entries at once.
- Entries expire after ``ttl`` seconds; at most ``max_entries`` are kept (least recently
  used evicted first).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import OrderedDict
from dataclasses import dataclass

DEFAULT_TTL = 300.0
DEFAULT_MAX_ENTRIES = 10_000


@dataclass(frozen=True)
class _Entry:
    mailbox_id: int
    credential_version: int
    expires: float


class CredentialCache:
    """Bounded, expiring map from (login, password) digests to verified accounts."""

    def __init__(self, *, ttl: float = DEFAULT_TTL,
                 max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self._key = secrets.token_bytes(32)
        self._ttl = ttl
        self._max = max_entries
        self._entries: OrderedDict[bytes, _Entry] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def _digest(self, login: str, password: str) -> bytes:
        data = login.encode("utf-8", "surrogatepass") + b"\0" + password.encode(
            "utf-8", "surrogatepass")
        return hmac.new(self._key, data, hashlib.sha256).digest()

    def __len__(self) -> int:
        return len(self._entries)

    def check(self, login: str, password: str, *, mailbox_id: int,
              credential_version: int, now: float) -> bool:
        """True if (login, password) was verified for this mailbox at this version."""
        if self._ttl <= 0:
            return False
        digest = self._digest(login, password)
        entry = self._entries.get(digest)
        if entry is None:
            self.misses += 1
            return False
        if (entry.expires <= now or entry.mailbox_id != mailbox_id
                or entry.credential_version != credential_version):
            del self._entries[digest]
            self.misses += 1
            return False
        self._entries.move_to_end(digest)
        self.hits += 1
        return True

    def put(self, login: str, password: str, *, mailbox_id: int, credential_version: int,
            now: float) -> None:
        if self._ttl <= 0 or self._max <= 0:
            return
        digest = self._digest(login, password)
        self._entries.pop(digest, None)
        self._entries[digest] = _Entry(mailbox_id, credential_version, now + self._ttl)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def discard_mailbox(self, mailbox_id: int) -> None:
        """Drop every entry of one mailbox (e.g. after a failed check of its version)."""
        for digest in [d for d, e in self._entries.items() if e.mailbox_id == mailbox_id]:
            del self._entries[digest]
