"""POP3 transcripts on real sockets with Python's poplib (and raw streams where poplib
has no command), against the real store on both engines."""

from __future__ import annotations

import asyncio
import poplib
import ssl
from dataclasses import replace
from typing import Any

import pytest

from gateway.config import Endpoint
from tests.integration.pop3.conftest import PASSWORD, USER, Pop3Env, free_port

MSG1 = (b"From: bob@example.test\r\nTo: alice@example.test\r\nSubject: one\r\n\r\n"
        b"Hello Alice.\r\n.leading dot\r\n..two dots\r\n.\r\nlast line\r\n")
MSG2 = (b"From: carol@example.test\r\nSubject: two\r\nX-Long: "
        + b"x" * 100 + b"\r\n\r\nline 1\r\nline 2\r\nline 3\r\nline 4\r\n")


def client(env: Pop3Env, *, tls: str = "stls") -> poplib.POP3:
    if tls == "ssl":
        return poplib.POP3_SSL("127.0.0.1", env.ssl_port, context=env.client_tls, timeout=10)
    pop = poplib.POP3("127.0.0.1", env.port, timeout=10)
    if tls == "stls":
        pop.stls(context=_hostless(env.client_tls))
    return pop


def _hostless(ctx: ssl.SSLContext) -> ssl.SSLContext:
    # poplib passes server_hostname=127.0.0.1; the test certificate names "localhost"
    ctx.check_hostname = False
    return ctx


def login(env: Pop3Env, *, tls: str = "stls") -> poplib.POP3:
    pop = client(env, tls=tls)
    pop.user(USER)
    pop.pass_(PASSWORD)
    return pop


class Raw:
    """A line-level client for what poplib cannot send."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port: int, tls: ssl.SSLContext | None = None) -> Raw:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=tls, server_hostname="localhost" if tls else None)
        raw = cls(reader, writer)
        assert (await raw.line()).startswith("+OK")
        return raw

    async def line(self) -> str:
        return (await asyncio.wait_for(self.reader.readline(), 10)).decode().rstrip("\r\n")

    async def cmd(self, text: str | bytes) -> str:
        data = text if isinstance(text, bytes) else text.encode() + b"\r\n"
        self.writer.write(data)
        await self.writer.drain()
        return await self.line()

    async def multiline(self) -> list[str]:
        out = []
        while (line := await self.line()) != ".":
            out.append(line)
        return out

    async def eof(self) -> bool:
        return await asyncio.wait_for(self.reader.read(), 10) == b""

    def close(self) -> None:
        self.writer.close()


# -- greeting, CAPA and the login type ----------------------------------------------------

async def test_secure_login_default_refuses_clear_text_before_tls(pop3: Pop3Env) -> None:
    def talk() -> tuple[bytes, dict[str, list[str]], str]:
        pop = client(pop3, tls="none")
        welcome = pop.getwelcome()
        caps = pop.capa()
        with pytest.raises(poplib.error_proto) as err:
            pop.user(USER)
        pop.quit()
        return welcome, caps, str(err.value)

    welcome, caps, error = await asyncio.to_thread(talk)
    assert welcome == b"+OK The Microsoft Exchange POP3 service is ready."
    assert "STLS" in caps and "USER" not in caps and "SASL" not in caps
    assert {"TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"} <= set(caps)
    assert "-ERR" in error and "STLS" in error


async def test_stls_then_user_pass_and_every_transaction_command(pop3: Pop3Env) -> None:
    await pop3.deliver(MSG1)
    await pop3.deliver(MSG2)
    inbox = await pop3.store.mail.get_folder(pop3.inbox_id)

    def talk() -> dict[str, Any]:
        pop = client(pop3)
        out: dict[str, Any] = {"caps": pop.capa()}
        pop.user(USER)
        out["pass"] = pop.pass_(PASSWORD)
        out["stat"] = pop.stat()
        out["list"] = pop.list()
        out["list2"] = pop.list(2)
        out["uidl"] = pop.uidl()
        out["retr1"] = pop.retr(1)
        out["top2"] = pop.top(2, 2)
        out["top0"] = pop.top(2, 0)
        out["noop"] = pop.noop()
        out["capa_trans"] = pop.capa()
        out["quit"] = pop.quit()
        return out

    out = await asyncio.to_thread(talk)
    assert "USER" in out["caps"] and out["caps"]["SASL"] == ["PLAIN", "LOGIN", "NTLM"]
    assert "STLS" not in out["caps"]
    assert out["pass"] == b"+OK User successfully logged on."
    assert out["stat"] == (2, len(MSG1) + len(MSG2))
    assert out["list"][1] == [f"1 {len(MSG1)}".encode(), f"2 {len(MSG2)}".encode()]
    assert out["list2"] == f"+OK 2 {len(MSG2)}".encode()
    uv = inbox.uidvalidity
    assert out["uidl"][1] == [f"1 {uv}.1".encode(), f"2 {uv}.2".encode()]
    resp, lines, octets = out["retr1"]
    assert resp == f"+OK {len(MSG1)} octets".encode()
    assert b"\r\n".join(lines) + b"\r\n" == MSG1  # dot-stuffing round-trips exactly
    assert octets == len(MSG1)
    header = MSG2.split(b"\r\n\r\n")[0].split(b"\r\n")
    assert out["top2"][1] == [*header, b"", b"line 1", b"line 2"]
    assert out["top0"][1] == [*header, b""]
    assert out["noop"] == b"+OK"
    assert "USER" not in out["capa_trans"] and "TOP" in out["capa_trans"]
    assert out["quit"] == b"+OK Microsoft Exchange Server POP3 server signing off."


async def test_plain_text_login_applies_without_restart(pop3: Pop3Env) -> None:
    await pop3.set_settings(login_type="PlainTextLogin", banner="POP3 ready here.")

    def talk() -> tuple[bytes, dict[str, list[str]], tuple[int, int]]:
        pop = client(pop3, tls="none")
        caps = pop.capa()
        pop.user(USER)
        pop.pass_(PASSWORD)
        stat = pop.stat()
        pop.quit()
        return pop.welcome, caps, stat

    welcome, caps, stat = await asyncio.to_thread(talk)
    assert welcome == b"+OK POP3 ready here."
    assert "USER" in caps and caps["SASL"] == ["PLAIN", "LOGIN", "NTLM"]
    assert stat == (0, 0)


async def test_plain_text_authentication_still_needs_tls_for_passwords(pop3: Pop3Env) -> None:
    await pop3.set_settings(login_type="PlainTextAuthentication")
    raw = await Raw.connect(pop3.port)
    try:
        await raw.cmd("CAPA")
        caps = await raw.multiline()
        # PlainTextAuthentication: only the integrated mechanism (NTLM) without TLS
        assert "USER" not in caps and [c for c in caps if c.startswith("SASL")] == \
            ["SASL NTLM"]
        assert (await raw.cmd("AUTH PLAIN")).startswith("-ERR")
        assert (await raw.cmd(f"USER {USER}")).startswith("-ERR")
    finally:
        raw.close()


# -- SASL (RFC 5034) -------------------------------------------------------------------------

def b64(text: str) -> str:
    import base64
    return base64.b64encode(text.encode()).decode()


async def test_auth_plain_and_login_over_implicit_tls(pop3: Pop3Env) -> None:
    raw = await Raw.connect(pop3.ssl_port, pop3.client_tls)
    try:
        assert await raw.cmd("AUTH") == "+OK"
        assert await raw.multiline() == ["PLAIN", "LOGIN", "NTLM"]
        assert await raw.cmd("AUTH PLAIN") == "+ "
        assert (await raw.cmd("*")).startswith("-ERR")
        assert (await raw.cmd("AUTH PLAIN " + b64(f"\0{USER}\0wrong"))).startswith(
            "-ERR [AUTH]")
        assert await raw.cmd("AUTH PLAIN " + b64(f"\0{USER}\0{PASSWORD}")) == (
            "+OK User successfully logged on.")
        assert await raw.cmd("QUIT") == "+OK Microsoft Exchange Server POP3 server signing off."
    finally:
        raw.close()
    raw = await Raw.connect(pop3.ssl_port, pop3.client_tls)
    try:
        assert await raw.cmd("AUTH LOGIN") == "+ " + b64("Username:")
        assert await raw.cmd(b64(USER)) == "+ " + b64("Password:")
        assert (await raw.cmd(b64(PASSWORD))).startswith("+OK")
        assert (await raw.cmd("STAT")) == "+OK 0 0"
        assert (await raw.cmd("AUTH PLAIN")) == "-ERR Command is not valid in this state."
    finally:
        raw.close()
    raw = await Raw.connect(pop3.ssl_port, pop3.client_tls)
    try:
        assert (await raw.cmd("AUTH PLAIN !!!")).startswith("-ERR")
        assert (await raw.cmd("AUTH X-FOO")) == "-ERR Unrecognized authentication type."
    finally:
        raw.close()


# -- deletion and the UPDATE state ---------------------------------------------------------

async def test_dele_rset_and_quit_expunge_durably(pop3: Pop3Env) -> None:
    for i in range(4):
        await pop3.deliver(MSG2 + f"n{i}\r\n".encode())

    def first() -> tuple[bytes, tuple[int, int], bytes]:
        pop = login(pop3, tls="ssl")
        pop.dele(1)
        pop.dele(2)
        with pytest.raises(poplib.error_proto):
            pop.retr(1)
        with pytest.raises(poplib.error_proto):
            pop.dele(1)
        rset = pop.rset()
        pop.dele(2)
        pop.dele(3)
        stat = pop.stat()
        return rset, stat, pop.quit()

    rset, stat, _ = await asyncio.to_thread(first)
    assert rset.startswith(b"+OK Maildrop has 4 messages")
    assert stat[0] == 2
    assert await pop3.store.mail.list_uids(pop3.inbox_id) == [1, 4]

    def dropped() -> None:
        pop = login(pop3, tls="ssl")
        pop.dele(1)
        pop.close()  # no QUIT: RFC 1939 §6, nothing is removed

    await asyncio.to_thread(dropped)
    await asyncio.sleep(0.2)
    assert await pop3.store.mail.list_uids(pop3.inbox_id) == [1, 4]

    def uidl() -> list[bytes]:
        pop = login(pop3, tls="ssl")
        lines = pop.uidl()[1]
        pop.quit()
        return lines

    inbox = await pop3.store.mail.get_folder(pop3.inbox_id)
    assert await asyncio.to_thread(uidl) == [f"1 {inbox.uidvalidity}.1".encode(),
                                             f"2 {inbox.uidvalidity}.4".encode()]


async def test_snapshot_stays_consistent_while_the_mailbox_changes(pop3: Pop3Env) -> None:
    for i in range(3):
        await pop3.deliver(MSG2 + f"n{i}\r\n".encode())
    raw = await Raw.connect(pop3.ssl_port, pop3.client_tls)
    try:
        await raw.cmd(f"USER {USER}")
        assert (await raw.cmd(f"PASS {PASSWORD}")).startswith("+OK")
        # another client (IMAP) expunges message 2 and a new message arrives
        await pop3.store.mail.expunge(pop3.inbox_id, [(2, 2)], only_deleted=False)
        await pop3.deliver(MSG1)
        assert (await raw.cmd("STAT")) == f"+OK 3 {3 * (len(MSG2) + 4)}"
        assert (await raw.cmd("RETR 2")).startswith("-ERR That message has been removed")
        assert (await raw.cmd("RETR 3")).startswith("+OK")
        assert (await raw.multiline())[-1] == "n2"
        assert (await raw.cmd("LIST 4")) == "-ERR No such message."
        assert (await raw.cmd("DELE 2")).startswith("+OK")  # already gone: harmless
        assert (await raw.cmd("DELE 3")).startswith("+OK")
        assert (await raw.cmd("QUIT")).startswith("+OK")
    finally:
        raw.close()
    assert await pop3.store.mail.list_uids(pop3.inbox_id) == [1, 4]


async def test_large_message_streams_with_stuffing_across_chunks(pop3: Pop3Env) -> None:
    from protocols.pop3.transaction import CHUNK

    line = b"." + b"y" * 98 + b"\r\n"  # every line needs stuffing
    body = line * (3 * CHUNK // len(line) + 7)
    raw = b"Subject: big\r\n\r\n" + body
    await pop3.deliver(raw)

    def talk() -> tuple[list[bytes], int, list[bytes]]:
        pop = login(pop3, tls="ssl")
        _resp, lines, octets = pop.retr(1)
        top = pop.top(1, 3)[1]
        pop.quit()
        return lines, octets, top

    lines, octets, top = await asyncio.to_thread(talk)
    assert b"\r\n".join(lines) + b"\r\n" == raw
    assert octets == len(raw)
    assert top == [b"Subject: big", b"", line[:-2], line[:-2], line[:-2]]


# -- limits -------------------------------------------------------------------------------

@pytest.mark.slow  # full-cost argon2 for the unknown user and the upgraded hash
async def test_wrong_password_and_disabled_pop(pop3: Pop3Env) -> None:
    raw = await Raw.connect(pop3.ssl_port, pop3.client_tls)
    try:
        for _ in range(2):
            await raw.cmd(f"USER {USER}")
            assert await raw.cmd("PASS nope") == (
                "-ERR [AUTH] Logon failure: unknown user name or bad password.")
        assert await raw.cmd("PASS nope") == "-ERR Command is not valid in this state."
        await raw.cmd("USER nobody@example.test")
        assert (await raw.cmd("PASS nope")).startswith("-ERR [AUTH]")
        assert await raw.eof()  # third failure closes the connection
    finally:
        raw.close()
    await pop3.store.org.update_mailbox(pop3.mailbox_id, pop_enabled=False)

    def disabled() -> str:
        pop = client(pop3, tls="ssl")
        pop.user(USER)
        with pytest.raises(poplib.error_proto) as err:
            pop.pass_(PASSWORD)
        pop.close()
        return str(err.value)

    assert "[AUTH]" in await asyncio.to_thread(disabled)


async def test_max_connections_per_user(pop3: Pop3Env) -> None:
    await pop3.set_settings(max_connections_per_user=1)
    first = await asyncio.to_thread(login, pop3, tls="ssl")

    def second() -> str:
        pop = client(pop3, tls="ssl")
        pop.user(USER)
        with pytest.raises(poplib.error_proto) as err:
            pop.pass_(PASSWORD)
        pop.close()
        return str(err.value)

    try:
        assert "-ERR [IN-USE] Too many connections" in await asyncio.to_thread(second)
    finally:
        await asyncio.to_thread(first.quit)
    third = await asyncio.to_thread(login, pop3, tls="ssl")
    await asyncio.to_thread(third.quit)


async def test_state_errors_and_protocol_errors(pop3: Pop3Env) -> None:
    raw = await Raw.connect(pop3.port)
    try:
        assert await raw.cmd("STAT") == "-ERR Command is not valid in this state."
        assert await raw.cmd("PASS x") == "-ERR Command is not valid in this state."
        assert (await raw.cmd("XYZZY")).startswith("-ERR Protocol error")
        assert (await raw.cmd("CAPA extra")).startswith("-ERR Protocol error")
        assert (await raw.cmd(b"\xff\xfe\r\n")).startswith("-ERR Protocol error")
        assert (await raw.cmd(b"NOOP\0\r\n")).startswith("-ERR")
        assert (await raw.cmd("A" * 9000)).startswith("-ERR Protocol error: line too long")
        assert await raw.eof()
    finally:
        raw.close()
    raw = await Raw.connect(pop3.port)
    try:
        for _ in range(9):
            assert (await raw.cmd("BAD")).startswith("-ERR")
        assert (await raw.cmd("BAD")).startswith("-ERR Too many invalid commands")
        assert await raw.eof()
    finally:
        raw.close()


async def test_bad_message_numbers(pop3: Pop3Env) -> None:
    await pop3.deliver(MSG1)
    raw = await Raw.connect(pop3.ssl_port, pop3.client_tls)
    try:
        await raw.cmd(f"USER {USER}")
        await raw.cmd(f"PASS {PASSWORD}")
        assert (await raw.cmd("RETR 0")) == "-ERR No such message."
        assert (await raw.cmd("RETR -1")).startswith("-ERR Protocol error")
        assert (await raw.cmd("RETR 99999999999")).startswith("-ERR Protocol error")
        assert (await raw.cmd("TOP 1 x")).startswith("-ERR Protocol error")
        assert (await raw.cmd("UIDL 2")) == "-ERR No such message."
    finally:
        raw.close()


async def test_stls_refuses_pipelined_input(pop3: Pop3Env) -> None:
    raw = await Raw.connect(pop3.port)
    try:
        assert (await raw.cmd(b"STLS\r\nUSER evil\r\n")) == "-ERR Unexpected input after STLS."
        assert await raw.eof()
    finally:
        raw.close()


async def test_stls_twice_is_refused(pop3: Pop3Env) -> None:
    raw = await Raw.connect(pop3.ssl_port, pop3.client_tls)
    try:
        assert (await raw.cmd("STLS")) == "-ERR Command not permitted when TLS active."
        await raw.cmd("CAPA")
        assert "STLS" not in await raw.multiline()
    finally:
        raw.close()


async def test_idle_timeout_before_login(pop3: Pop3Env) -> None:
    ctx = pop3.service.ctx
    ctx.settings = replace(ctx.settings, pre_authenticated_connection_timeout=0.3)
    raw = await Raw.connect(pop3.port)
    try:
        assert await raw.line() == "-ERR Connection timed out."
        assert await raw.eof()
    finally:
        raw.close()


async def test_bindings_change_without_restart(pop3: Pop3Env) -> None:
    new_port = free_port()
    await pop3.set_settings(unencrypted_or_tls_bindings=[f"127.0.0.1:{new_port}"])
    raw = await Raw.connect(new_port)
    raw.close()
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", pop3.port)
    assert pop3.service.settings.unencrypted_or_tls_bindings == (
        Endpoint("127.0.0.1", new_port),)


async def test_sequential_retr_with_read_ahead_returns_each_message(pop3: Pop3Env) -> None:
    bodies = [MSG2 + f"number {i}\r\n".encode() for i in range(6)]
    for raw in bodies:
        await pop3.deliver(raw)

    def talk() -> list[bytes]:
        pop = login(pop3, tls="ssl")
        got = [b"\r\n".join(pop.retr(n)[1]) + b"\r\n" for n in (1, 2, 3)]
        pop.dele(5)
        got.append(b"\r\n".join(pop.top(4, 0)[1]))
        got += [b"\r\n".join(pop.retr(n)[1]) + b"\r\n" for n in (4, 6, 1)]
        with pytest.raises(poplib.error_proto):
            pop.retr(5)
        pop.quit()
        return got

    got = await asyncio.to_thread(talk)
    assert got[:3] == bodies[:3]
    assert got[3] == MSG2.split(b"\r\n\r\n")[0] + b"\r\n"
    assert got[4:] == [bodies[3], bodies[5], bodies[0]]
    assert await pop3.store.mail.list_uids(pop3.inbox_id) == [1, 2, 3, 4, 6]


async def test_idle_timeout_after_login_does_not_enter_update(pop3: Pop3Env) -> None:
    await pop3.deliver(MSG1)
    ctx = pop3.service.ctx
    ctx.settings = replace(ctx.settings, authenticated_connection_timeout=0.3)
    raw = await Raw.connect(pop3.ssl_port, pop3.client_tls)
    try:
        await raw.cmd(f"USER {USER}")
        assert (await raw.cmd(f"PASS {PASSWORD}")).startswith("+OK")
        assert (await raw.cmd("DELE 1")).startswith("+OK")
        assert await raw.line() == "-ERR Connection timed out."
        assert await raw.eof()
    finally:
        raw.close()
    # RFC 1939 §3: closed by the inactivity timer, the session never reached UPDATE
    assert await pop3.store.mail.list_uids(pop3.inbox_id) == [1]
    assert pop3.service.ctx.connections.count(pop3.mailbox_id) == 0


async def test_downloading_a_maildrop_in_order_reads_the_store_in_windows(
        pop3: Pop3Env) -> None:
    bodies = [MSG1 + f"message {i}\r\n".encode() for i in range(60)]
    for raw in bodies:
        await pop3.deliver(raw)
    # expunged by another client after login, before its window is read: -ERR
    before_login = await pop3.store.mail.list_uids(pop3.inbox_id)
    assert len(before_login) == 60

    def talk() -> tuple[list[bytes], int, bytes]:
        pop = login(pop3, tls="ssl")
        asyncio.run_coroutine_threadsafe(
            pop3.store.mail.expunge(pop3.inbox_id, [(50, 50)], only_deleted=False),
            loop).result(10)
        jobs = pop3.store.stats.read_jobs
        got = [b"\r\n".join(pop.retr(n)[1]) + b"\r\n" for n in range(1, 50)]
        jobs = pop3.store.stats.read_jobs - jobs
        try:
            pop.retr(50)
            err = b""
        except poplib.error_proto as exc:
            err = exc.args[0]
        got += [b"\r\n".join(pop.retr(n)[1]) + b"\r\n" for n in range(51, 61)]
        pop.quit()
        return got, jobs, err

    loop = asyncio.get_running_loop()
    got, jobs, err = await asyncio.to_thread(talk)
    assert got == bodies[:49] + bodies[50:]
    assert err.startswith(b"-ERR That message has been removed")
    # one store read per window (ramping up to 32 messages), not one per message
    assert jobs <= 8
