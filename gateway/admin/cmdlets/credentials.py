"""Password -> stored credentials, computed off the event loop.

The argon2id hash (``auth.passwords.hash_password``, CPU-bound) and, for mailboxes with
NTLM enabled, the NT hash (MS-NLMP §3.3.1) both run in a worker thread. The password is
never logged, kept or echoed.
"""

from __future__ import annotations

import asyncio

from auth.passwords import hash_password, nt_hash
from gateway.admin import validation


async def derive(password: str, *, ntlm: bool) -> tuple[str, bytes | None]:
    """``(password_hash, nt_hash or None)`` for a new password (length-checked first)."""
    validation.password(password)
    hashed = await asyncio.to_thread(hash_password, password)
    nt = await asyncio.to_thread(nt_hash, password) if ntlm else None
    return hashed, nt
