"""The process model: a node runs a set of services under one event loop.

Role: the interface every front end (SMTP, IMAP, POP3, HTTPS) implements so the node
can start it, tell it about organisation changes and stop it cleanly. Invariant:
``stop`` lets in-flight work finish within the grace period, then cuts it off; a
service never outlives the node's store.
"""

from __future__ import annotations

from typing import Protocol


class Service(Protocol):
    name: str

    async def start(self) -> None:
        """Bind sockets and begin serving. Raise BindError/ConfigError on failure."""

    async def stop(self, grace: float) -> None:
        """Stop accepting; let in-flight work finish for up to ``grace`` seconds."""

    async def on_org_change(self, version: int) -> None:
        """The organisation configuration changed (re-read what you depend on)."""

    def describe(self) -> list[str]:
        """What this service listens on, one line each, for the start-up log."""
