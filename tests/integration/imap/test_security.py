"""Security regressions on the wire (security.md A5): login types, STARTTLS and its
buffer, literal and line limits, nesting depth, idle timeout, connections per user."""

from __future__ import annotations

import asyncio
import imaplib
import ssl

import pytest

from tests.integration.imap.conftest import PASSWORD, USER, Server


class Raw:
    """A raw IMAP client on asyncio streams, for exact transcripts."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, s: Server) -> Raw:
        r, w = await asyncio.open_connection(s.host, s.port)
        c = cls(r, w)
        greeting = await c.line()
        assert greeting.startswith(b"* OK")
        return c

    async def line(self) -> bytes:
        return await asyncio.wait_for(self.reader.readline(), 10)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def cmd(self, data: bytes, tag: bytes = b"a") -> list[bytes]:
        await self.send(data + b"\r\n")
        out = []
        while True:
            line = await self.line()
            out.append(line)
            if line.startswith(tag + b" ") or not line:
                return out

    async def close(self) -> None:
        self.writer.close()


async def test_secure_login_hides_auth_before_tls(imap_server: Server) -> None:
    imap_server.set_policy(login_type="SecureLogin")
    c = await Raw.open(imap_server)
    caps = (await c.cmd(b"a CAPABILITY"))[0]
    assert b"LOGINDISABLED" in caps and b"STARTTLS" in caps and b"AUTH=" not in caps
    out = await c.cmd(b"a LOGIN " + USER.encode() + b" " + PASSWORD.encode())
    assert out[-1].startswith(b"a NO [PRIVACYREQUIRED]")
    out = await c.cmd(b"a AUTHENTICATE PLAIN AGFsaWNlAHg=")
    assert out[-1].startswith(b"a NO [PRIVACYREQUIRED]")
    await c.close()


async def test_starttls_then_login(imap_server: Server) -> None:
    imap_server.set_policy(login_type="SecureLogin")

    def client() -> list[str]:
        m = imaplib.IMAP4(imap_server.host, imap_server.port, timeout=10)
        assert "LOGINDISABLED" in m.capabilities
        m.starttls(imap_server.client_tls())
        caps = list(m.capabilities)
        m.login(USER, PASSWORD)
        m.logout()
        return caps
    caps = await asyncio.to_thread(client)
    assert "LOGINDISABLED" not in caps and "STARTTLS" not in caps and "AUTH=PLAIN" in caps


async def test_starttls_refuses_pipelined_plaintext(imap_server: Server) -> None:
    c = await Raw.open(imap_server)
    await c.send(b"a STARTTLS\r\nb CAPABILITY\r\n")
    line = await c.line()
    assert line.startswith(b"* BYE")
    assert await c.line() == b""
    await c.close()


async def test_synchronising_literal_too_large_refused_before_continuation(
        imap_server: Server) -> None:
    c = await Raw.open(imap_server)
    await c.send(b"a LOGIN {999999}\r\n")
    line = await c.line()
    assert line.startswith(b"a NO"), line  # no "+ " continuation was sent
    assert (await c.cmd(b"b NOOP", b"b"))[-1].startswith(b"b OK")
    await c.close()


async def test_non_synchronising_literal_too_large_closes(imap_server: Server) -> None:
    c = await Raw.open(imap_server)
    await c.send(b"a LOGIN {999999+}\r\n")
    assert (await c.line()).startswith(b"* BYE")
    await c.close()


async def test_line_too_long_closes(imap_server: Server) -> None:
    c = await Raw.open(imap_server)
    await c.send(b"a NOOP " + b"x" * 70000 + b"\r\n")
    assert (await c.line()).startswith(b"* BYE")
    await c.close()


async def test_nesting_depth_is_limited(imap_server: Server) -> None:
    c = await Raw.open(imap_server)
    await c.cmd(b"a LOGIN " + USER.encode() + b" " + PASSWORD.encode())
    await c.cmd(b"b SELECT INBOX", b"b")
    out = await c.cmd(b"c SEARCH " + b"(" * 100 + b"ALL" + b")" * 100, b"c")
    assert out[-1].startswith(b"c BAD"), out
    await c.close()


async def test_literal_plus_and_synchronising_login(imap_server: Server) -> None:
    c = await Raw.open(imap_server)
    user = USER.encode()
    await c.send(b"a LOGIN {%d}\r\n" % len(user))
    assert (await c.line()).startswith(b"+ ")
    await c.send(user + b" {%d+}\r\n" % len(PASSWORD) + PASSWORD.encode() + b"\r\n")
    line = await c.line()
    assert line.startswith(b"a OK"), line
    await c.close()


async def test_pre_auth_idle_timeout(imap_server: Server) -> None:
    imap_server.set_policy(pre_authenticated_connection_timeout=0.3)
    c = await Raw.open(imap_server)
    assert (await c.line()).startswith(b"* BYE")
    await c.close()


async def test_max_connections_per_user(imap_server: Server) -> None:
    imap_server.set_policy(max_connections_per_user=1)
    a = await Raw.open(imap_server)
    login = b"a LOGIN " + USER.encode() + b" " + PASSWORD.encode()
    assert (await a.cmd(login))[-1].startswith(b"a OK")
    b = await Raw.open(imap_server)
    assert (await b.cmd(login))[-1].startswith(b"a NO [LIMIT]")
    await a.cmd(b"a LOGOUT")
    await asyncio.sleep(0.1)
    assert (await b.cmd(login))[-1].startswith(b"a OK")
    await a.close()
    await b.close()


async def test_bad_commands_and_states(imap_server: Server) -> None:
    c = await Raw.open(imap_server)
    assert (await c.cmd(b"a SELECT INBOX"))[-1].startswith(b"a BAD")
    assert (await c.cmd(b"a FROB"))[-1].startswith(b"a BAD")
    assert (await c.cmd(b'a LOGIN "unterminated'))[-1].startswith(b"a BAD")
    assert (await c.cmd(b"a LOGIN " + USER.encode() + b" " + PASSWORD.encode()))[-1] \
        .startswith(b"a OK")
    assert (await c.cmd(b"a FETCH 1 FLAGS"))[-1].startswith(b"a BAD")
    await c.cmd(b"a SELECT INBOX")
    assert (await c.cmd(b"a FETCH 5 FLAGS"))[-1].startswith(b"a BAD")
    assert (await c.cmd(b"a FETCH 1:* (FLAGS"))[-1].startswith(b"a BAD")
    await c.close()


@pytest.mark.parametrize("mechanism_ir", [True, False])
async def test_authenticate_plain(imap_server: Server, mechanism_ir: bool) -> None:
    import base64
    token = base64.b64encode(b"\0" + USER.encode() + b"\0" + PASSWORD.encode())
    c = await Raw.open(imap_server)
    if mechanism_ir:  # SASL-IR (RFC 4959)
        out = await c.cmd(b"a AUTHENTICATE PLAIN " + token)
    else:
        await c.send(b"a AUTHENTICATE PLAIN\r\n")
        assert (await c.line()).startswith(b"+")
        out = await c.cmd(token)
    assert out[-1].startswith(b"a OK [CAPABILITY"), out
    await c.close()


async def test_authenticate_login_and_cancel(imap_server: Server) -> None:
    import base64
    c = await Raw.open(imap_server)
    await c.send(b"a AUTHENTICATE LOGIN\r\n")
    assert (await c.line()).startswith(b"+ ")
    out = await c.cmd(b"*")
    assert out[-1].startswith(b"a BAD")
    await c.send(b"b AUTHENTICATE LOGIN\r\n")
    assert (await c.line()).startswith(b"+ ")
    await c.send(base64.b64encode(USER.encode()) + b"\r\n")
    assert (await c.line()).startswith(b"+ ")
    out = await c.cmd(base64.b64encode(PASSWORD.encode()), b"b")
    assert out[-1].startswith(b"b OK"), out
    await c.close()


async def test_implicit_tls_capability_has_no_starttls(imap_server: Server) -> None:
    # the same handler behind a TLS-wrapped server (as the imaps listener runs it)
    from gateway.listeners.stream import ConnectionInfo
    from protocols.imap.session import handle

    async def on_client(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        info = ConnectionInfo("c-tls", "imaps", "127.0.0.1", 0, "127.0.0.1", 0, "127.0.0.1",
                              False).with_tls(w)
        await handle(imap_server.ctx, r, w, info)
    server = await asyncio.start_server(on_client, "127.0.0.1", 0,
                                        ssl=imap_server.ctx.tls_context)
    port = server.sockets[0].getsockname()[1]
    imap_server.set_policy(login_type="SecureLogin")
    try:
        r, w = await asyncio.open_connection("127.0.0.1", port, ssl=imap_server.client_tls())
        greeting = await r.readline()
        assert b"AUTH=PLAIN" in greeting and b"STARTTLS" not in greeting
        assert b"LOGINDISABLED" not in greeting
        w.close()
    finally:
        server.close()
        await server.wait_closed()
    assert isinstance(imap_server.ctx.tls_context, ssl.SSLContext)


async def test_imap_disabled_mailbox_cannot_log_in(imap_server: Server) -> None:
    await imap_server.store.org.update_mailbox(imap_server.mailbox_id, imap_enabled=False)
    c = await Raw.open(imap_server)
    out = await c.cmd(b"a LOGIN " + USER.encode() + b" " + PASSWORD.encode())
    assert out[-1].startswith(b"a NO [AUTHENTICATIONFAILED]")
    await c.close()


async def test_other_users_mailbox_is_out_of_reach(imap_server: Server) -> None:
    await imap_server.deliver(b"Subject: secret\r\n\r\nbob's\r\n",
                              mailbox_id=imap_server.other_mailbox_id)
    c = await Raw.open(imap_server)
    await c.cmd(b"a LOGIN " + USER.encode() + b" " + PASSWORD.encode())
    for name in (b"../bob/INBOX", b"/INBOX", b"bob/INBOX", b"#shared/bob"):
        out = await c.cmd(b"a SELECT " + name)
        assert out[-1].startswith(b"a NO"), (name, out)
    out = await c.cmd(b"a STATUS INBOX (MESSAGES)")
    assert out[0] == b"* STATUS INBOX (MESSAGES 0)\r\n"
    await c.close()


async def test_stalled_authenticate_times_out(imap_server: Server) -> None:
    imap_server.set_policy(pre_authenticated_connection_timeout=0.3)
    c = await Raw.open(imap_server)
    await c.send(b"a AUTHENTICATE PLAIN\r\n")
    assert (await c.line()).startswith(b"+")
    assert (await c.line()).startswith(b"* BYE")
    await c.close()


async def test_message_sized_literals_only_after_login(imap_server: Server) -> None:
    c = await Raw.open(imap_server)
    await c.send(b"a APPEND INBOX {100000}\r\n")  # fine after login, not before
    assert (await c.line()).startswith(b"a NO")
    await c.close()
