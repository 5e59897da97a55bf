"""Fixtures for the admin shell's unit tests: a fake store.org and a fast password hash."""

from __future__ import annotations

import pytest

from gateway.admin import AdminContext
from gateway.admin.cmdlets import credentials
from tests.unit.admin.fake_org import FakeStore


def fake_hash(password: str) -> str:
    return "fake$" + password[::-1]


def fake_nt_hash(password: str) -> bytes:
    return (password.encode() * 16)[:16]


@pytest.fixture(autouse=True)
def fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2id takes a quarter second; unit tests check the wiring, not the hash."""
    monkeypatch.setattr(credentials, "hash_password", fake_hash)
    monkeypatch.setattr(credentials, "nt_hash", fake_nt_hash)


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()


@pytest.fixture
def ctx(store: FakeStore) -> AdminContext:
    return AdminContext(store=store, server_name="mail1.example.test")
