"""A minimal raw IMAP client for exact transcripts (responses with literals included)."""

from __future__ import annotations

import asyncio
import importlib.util
import re
from pathlib import Path
from typing import Any

from tests.integration.imap.conftest import PASSWORD, USER, Server

_LIT = re.compile(rb"~?\{(\d+)\}\r\n$")
_spec = importlib.util.spec_from_file_location(
    "make_reference", Path(__file__).resolve().parents[2] / "data" / "mime" / "make_reference.py")
assert _spec is not None and _spec.loader is not None
make_reference = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_reference)


class Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.n = 0

    @classmethod
    async def open(cls, s: Server, *, login: bool = True) -> Client:
        r, w = await asyncio.open_connection(s.host, s.port, limit=1 << 24)
        c = cls(r, w)
        assert (await c.response()).startswith(b"* OK")
        if login:
            out = await c.cmd(f"LOGIN {USER} {PASSWORD}")
            assert out[-1].split(b" ")[1] == b"OK", out
        return c

    async def response(self) -> bytes:
        """One response line with its literals."""
        data = await asyncio.wait_for(self.reader.readline(), 10)
        while (m := _LIT.search(data)) is not None:
            data += await self.reader.readexactly(int(m.group(1)))
            data += await asyncio.wait_for(self.reader.readline(), 10)
        return data

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def cmd(self, command: str | bytes) -> list[bytes]:
        """Send a tagged command; the responses up to and including the tagged one."""
        self.n += 1
        tag = b"t%d" % self.n
        raw = command.encode() if isinstance(command, str) else command
        await self.send(tag + b" " + raw + b"\r\n")
        out = []
        while True:
            line = await self.response()
            if not line:
                raise ConnectionError("closed")
            out.append(line)
            if line.startswith(tag + b" "):
                return out

    async def append(self, mailbox: str, raw: bytes, flags: str = "") -> bytes:
        self.n += 1
        tag = b"t%d" % self.n
        head = tag + f" APPEND {mailbox} {flags + ' ' if flags else ''}".encode()
        await self.send(head + b"{%d+}\r\n" % len(raw) + raw + b"\r\n")
        while True:
            line = await self.response()
            if line.startswith(tag + b" "):
                return line

    async def close(self) -> None:
        self.writer.close()


def fetch_items(line: bytes) -> dict[str, Any]:
    """``* n FETCH (...)`` -> {item name: value} (values as make_reference parses them)."""
    start = line.index(b"FETCH (") + 6
    values, _ = make_reference.parse(line, start)
    out: dict[str, Any] = {}
    i = 0
    while i < len(values):
        key = values[i]
        name = key[1] if isinstance(key, tuple) else str(key)
        nxt = values[i + 1]
        if isinstance(nxt, tuple) and nxt[1].startswith("<"):  # BODY[]<origin>
            name += nxt[1]
            i += 1
        out[name.upper()] = values[i + 1]
        i += 2
    return out
