"""Parse store URLs (docs/dev/interfaces.md, "Store").

Accepted forms:

* ``sqlite:///relative/or/abs.db`` - three slashes: the path after them, relative to the
  working directory unless it starts with ``/`` (``sqlite:////abs/path.db``).
* ``postgresql://user@host:port/db[?options]`` (also ``postgres://``) - handed to
  libpq unchanged, so every libpq parameter (``sslmode``, ``options``...) works.

Invariant: a parsed URL never carries an empty path or an unknown scheme; bad input
raises ``ConfigError`` naming the problem (and never echoes a password).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from gateway.errors import ConfigError

EngineName = Literal["sqlite", "postgresql"]


@dataclass(frozen=True)
class StoreURL:
    """A validated store location."""

    engine: EngineName
    path: Path | None = None  # SQLite database file
    dsn: str | None = None  # PostgreSQL conninfo URL, as given

    def redacted(self) -> str:
        """The URL for logs: PostgreSQL passwords replaced by ``***``."""
        if self.engine == "sqlite":
            return f"sqlite:///{self.path}"
        parts = urlsplit(self.dsn or "")
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, host = netloc.rsplit("@", 1)
            user = userinfo.split(":", 1)[0]
            netloc = f"{user}:***@{host}" if ":" in userinfo else f"{user}@{host}"
        return parts._replace(netloc=netloc).geturl()


def parse_store_url(url: str) -> StoreURL:
    """Validate ``url`` and return its parts; ``ConfigError`` on anything else."""
    if not isinstance(url, str) or not url:
        raise ConfigError(["store url: expected 'sqlite:///path' or 'postgresql://...'"])
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep:
        raise ConfigError(["store url: missing '://' (expected 'sqlite:///path' or "
                           "'postgresql://user@host:port/db')"])
    if scheme == "sqlite":
        if not rest.startswith("/") or len(rest) < 2:
            raise ConfigError(["store url: SQLite URLs are 'sqlite:///relative.db' or "
                               "'sqlite:////absolute/path.db'"])
        path = rest[1:]
        if "?" in path or "\x00" in path:
            raise ConfigError(["store url: SQLite path must not contain '?' or NUL"])
        return StoreURL(engine="sqlite", path=Path(path))
    if scheme in ("postgresql", "postgres"):
        parts = urlsplit(url)
        if not parts.hostname and "host=" not in (parts.query or ""):
            raise ConfigError(["store url: PostgreSQL URL needs a host"])
        if not parts.path.strip("/"):
            raise ConfigError(["store url: PostgreSQL URL needs a database name"])
        return StoreURL(engine="postgresql", dsn=url)
    raise ConfigError([f"store url: unknown scheme {scheme!r} (expected sqlite or postgresql)"])
