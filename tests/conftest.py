"""Shared fixtures: ``store_url`` and ``store``, parametrised over both engines.

PostgreSQL: the server at ``GATEWAY_TEST_PG_URL`` (default
``postgresql://postgres@127.0.0.1:5432/test``). Each test gets a fresh schema, selected
through ``options=-csearch_path=<schema>`` in the URL, and the schema is dropped after.
When the server is unreachable the PostgreSQL half is skipped - unless
``GATEWAY_TEST_PG_REQUIRED=1`` (CI), which turns the skip into a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

PG_URL = os.environ.get("GATEWAY_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
PG_REQUIRED = os.environ.get("GATEWAY_TEST_PG_REQUIRED") == "1"
ENGINES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]

_pg_state: dict[str, str | None] = {}


def _pg_problem() -> str | None:
    """None when PostgreSQL answers, else why not (checked once per session)."""
    if "problem" not in _pg_state:
        try:
            import psycopg

            with psycopg.connect(PG_URL, connect_timeout=3) as conn:
                conn.execute("SELECT 1")
            _pg_state["problem"] = None
        except Exception as exc:
            _pg_state["problem"] = f"PostgreSQL at {PG_URL} unreachable: {exc}"
    return _pg_state["problem"]


def _with_search_path(url: str, schema: str) -> str:
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options=-csearch_path%3D{schema}"


@pytest.fixture(params=ENGINES)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty store of each engine, private to the test."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    problem = _pg_problem()
    if problem is not None:
        if PG_REQUIRED:
            pytest.fail(problem + " (GATEWAY_TEST_PG_REQUIRED=1)")
        pytest.skip(problem)
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield _with_search_path(PG_URL, schema)
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[object]:
    """An open store of each engine (``gateway.store.Store``)."""
    from gateway.store import open_store

    opened = await open_store(store_url)
    try:
        yield opened
    finally:
        await opened.close()
