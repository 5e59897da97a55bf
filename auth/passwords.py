"""Password hashing: one CryptContext for the whole gateway.

Role: turn a clear-text password into the stored hash (argon2id, RFC 9106) and check a
password against a stored hash, telling the caller when the hash should be upgraded to
the current parameters. Also computes the NT hash that NTLM needs.

Invariants:
- Every function here is CPU-bound and synchronous; callers on the event loop go
  through ``asyncio.to_thread`` (or ``auth.hashing.HashRunner``), never call directly.
- ``verify_password`` never raises on a malformed or foreign stored hash: it answers
  ``(False, None)``. A password is never logged or kept.
- ``nt_hash`` does not depend on ``hashlib``'s md4 (OpenSSL 3 may not provide it):
  passlib falls back to its own pure-Python MD4.
"""

from __future__ import annotations

from passlib.context import CryptContext
from passlib.hash import nthash

# argon2id with passlib's defaults (RFC 9106 §4 second recommended option: m=64 MiB,
# t=3, p=4). Hashes made with other parameters still verify and are flagged for rehash.
_CONTEXT = CryptContext(schemes=["argon2"], argon2__type="ID")

#: Longest password accepted anywhere (characters). Longer input is refused before
#: hashing so a client cannot make the server hash megabytes.
MAX_PASSWORD_LENGTH = 1024


def hash_password(password: str) -> str:
    """Hash ``password`` with argon2id. CPU-bound (about a quarter second)."""
    if not isinstance(password, str) or not password:
        raise ValueError("password must be a non-empty string")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ValueError(f"password longer than {MAX_PASSWORD_LENGTH} characters")
    return str(_CONTEXT.hash(password))


def verify_password(password: str, hash: str) -> tuple[bool, str | None]:
    """Check ``password`` against ``hash``.

    Returns ``(ok, new_hash)``: ``new_hash`` is set when the password matched and the
    stored hash uses outdated parameters (store it in place of the old one).
    """
    if not password or len(password) > MAX_PASSWORD_LENGTH or not hash:
        return False, None
    try:
        ok, new_hash = _CONTEXT.verify_and_update(password, hash)
    except (ValueError, TypeError):
        # Unknown scheme or a corrupt hash: a failed verification, not a crash.
        return False, None
    return bool(ok), (str(new_hash) if ok and new_hash else None)


def nt_hash(password: str) -> bytes:
    """The NT hash: MD4 of the UTF-16LE encoding of ``password`` (MS-NLMP §3.3.1)."""
    return bytes(nthash.raw(password))
