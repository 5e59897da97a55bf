"""Real clients for TLS tests: a raw HTTP/1.1 request over Python's ssl, and curl.

Both report a failed handshake the way a user would see it: ``HttpsResult.error`` set
(Python: the exception text; curl: its exit code and message), never an exception.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TIMEOUT = 10.0


@dataclass
class HttpsResult:
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    error: str | None = None

    def json(self) -> Any:
        return json.loads(self.body)


async def python_get(port: int, path: str, ctx: ssl.SSLContext, *,
                     host: str = "127.0.0.1") -> HttpsResult:
    """GET over a fresh TLS connection (HTTP/1.1, Connection: close)."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(
            host, port, ssl=ctx, server_hostname="localhost"), TIMEOUT)
    except (ssl.SSLError, OSError) as exc:
        return HttpsResult(error=f"{type(exc).__name__}: {exc}")
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
                     .encode())
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), TIMEOUT)
    except (ssl.SSLError, OSError) as exc:
        # TLS 1.3: the client finishes its handshake before the server has checked the
        # client certificate, so the server's refusal arrives on the first read.
        return HttpsResult(error=f"{type(exc).__name__}: {exc}")
    finally:
        writer.close()
    if not raw:
        return HttpsResult(error="connection closed without a response")
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return HttpsResult(status=int(lines[0].split()[1]), headers=headers, body=body)


async def curl_get(url: str, *, cacert: Path, cert: Path | None = None,
                   key: Path | None = None, extra: tuple[str, ...] = ()) -> HttpsResult:
    """``curl --cacert CA [--cert C --key K] URL``; the body and status, or the error."""
    args = ["curl", "-sS", "--max-time", str(int(TIMEOUT)), "--cacert", str(cacert),
            "-o", "-", "-w", "\n%{http_code}", *extra]
    if cert is not None:
        args += ["--cert", str(cert)]
    if key is not None:
        args += ["--key", str(key)]
    proc = await asyncio.create_subprocess_exec(*args, url, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    if proc.returncode != 0:
        return HttpsResult(error=f"curl exit {proc.returncode}: {err.decode().strip()}")
    body, _, code = out.rpartition(b"\n")
    return HttpsResult(status=int(code), body=body)
