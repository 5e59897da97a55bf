"""Password hashing (argon2id through passlib) and the NT hash."""

from __future__ import annotations

import pytest
from passlib.context import CryptContext

from auth.passwords import MAX_PASSWORD_LENGTH, hash_password, nt_hash, verify_password

# Cheap argon2 parameters so the tests stay fast; the real context flags them for rehash.
CHEAP = CryptContext(schemes=["argon2"], argon2__type="ID", argon2__memory_cost=256,
                     argon2__rounds=1, argon2__parallelism=1)


def test_hash_and_verify() -> None:
    stored = hash_password("S3cret!pass")
    assert stored.startswith("$argon2id$")
    assert verify_password("S3cret!pass", stored) == (True, None)
    assert verify_password("wrong", stored) == (False, None)


def test_outdated_parameters_give_a_new_hash_on_success_only() -> None:
    old = CHEAP.hash("pw")
    ok, new = verify_password("pw", old)
    assert ok and new is not None and new.startswith("$argon2id$") and new != old
    assert verify_password("pw", new) == (True, None)
    assert verify_password("nope", old) == (False, None)


@pytest.mark.parametrize("stored", ["", "garbage", "$argon2id$v=19$broken", "{SSHA}abc"])
def test_corrupt_or_foreign_hash_is_a_failure_not_a_crash(stored: str) -> None:
    assert verify_password("pw", stored) == (False, None)


def test_limits() -> None:
    stored = CHEAP.hash("x" * 10)
    assert verify_password("", stored) == (False, None)
    assert verify_password("x" * (MAX_PASSWORD_LENGTH + 1), stored) == (False, None)
    with pytest.raises(ValueError):
        hash_password("")
    with pytest.raises(ValueError):
        hash_password("x" * (MAX_PASSWORD_LENGTH + 1))


def test_nt_hash_known_vectors() -> None:
    # MD4(UTF-16LE("password")), the well-known NTLM test vector. OpenSSL 3 without the
    # legacy provider has no md4 (as on the build machine): this must still pass.
    assert nt_hash("password").hex() == "8846f7eaee8fb117ad06bdd830b7586c"
    assert nt_hash("").hex() == "31d6cfe0d16ae931b73c59d7e0c089c0"
    assert len(nt_hash("pässwörd")) == 16

