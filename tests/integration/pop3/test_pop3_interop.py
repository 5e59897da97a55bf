"""POP3 interop with third-party clients from Debian: curl (pop3://, pop3s://, STLS,
SASL PLAIN and LOGIN, UIDL) and fetchmail (STLS / SSL, RETR + DELE + QUIT)."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest

from tests.integration.pop3.conftest import PASSWORD, USER, Pop3Env

pytestmark = pytest.mark.slow

MSG = (b"From: bob@example.test\r\nTo: alice@example.test\r\nSubject: interop\r\n\r\n"
       b"Hello.\r\n.dotted line\r\nbye\r\n")


async def run(*argv: str, env: dict[str, str] | None = None) -> tuple[int, bytes, bytes]:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})})
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out, err


def curl_args(env: Pop3Env, port: int) -> list[str]:
    return ["curl", "-sS", "--max-time", "20", "--cacert", str(env.cert_path),
            "--resolve", f"localhost:{port}:127.0.0.1", "--user", f"{USER}:{PASSWORD}",
            # curl prefers NTLM when offered; this mailbox has no NT hash (NtlmEnabled off)
            "--login-options", "AUTH=PLAIN"]


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
async def test_curl_stls_list_retr_and_sasl(pop3: Pop3Env) -> None:
    await pop3.deliver(MSG)
    await pop3.deliver(MSG.replace(b"Hello.", b"Second."))
    base = curl_args(pop3, pop3.port)
    # STLS on the plain port (--ssl-reqd): LIST
    rc, out, err = await run(*base, "--ssl-reqd", f"pop3://localhost:{pop3.port}/")
    assert rc == 0, err
    assert out == f"1 {len(MSG)}\r\n2 {len(MSG) + 1}\r\n".encode()
    # RETR over implicit TLS with SASL LOGIN, then with PLAIN
    ssl_base = curl_args(pop3, pop3.ssl_port)
    for mech in ("LOGIN", "PLAIN"):
        rc, out, err = await run(*ssl_base, "--login-options", f"AUTH={mech}",
                                 f"pop3s://localhost:{pop3.ssl_port}/1")
        assert rc == 0, err
        assert out == MSG  # curl undoes the byte-stuffing
    # a custom command (UIDL) after STLS
    rc, out, err = await run(*base, "--ssl-reqd", "-X", "UIDL",
                             f"pop3://localhost:{pop3.port}/")
    assert rc == 0, err
    assert out.endswith(b".2\r\n")
    # without TLS, SecureLogin leaves curl no way to log in
    rc, out, err = await run(*base, f"pop3://localhost:{pop3.port}/")
    assert rc != 0


@pytest.mark.skipif(shutil.which("fetchmail") is None, reason="fetchmail is not installed")
@pytest.mark.parametrize("mode", ["sslproto", "ssl"])
async def test_fetchmail_fetches_and_deletes(pop3: Pop3Env, tmp_path: Path, mode: str) -> None:
    for i in range(3):
        await pop3.deliver(MSG.replace(b"Hello.", f"Message {i}.".encode()))
    rc_file = tmp_path / "fetchmailrc"
    port = pop3.port if mode == "sslproto" else pop3.ssl_port
    tls = "sslproto TLS1.2+" if mode == "sslproto" else "ssl"
    rc_file.write_text(
        f'poll localhost via 127.0.0.1 protocol POP3 service {port}\n'
        f'  user "{USER}" there with password "{PASSWORD}" is "root" here\n'
        f'  {tls} sslcertck sslcertfile "{pop3.cert_path}" sslcommonname localhost\n')
    rc_file.chmod(0o600)
    out_file = tmp_path / "out.bsmtp"
    rc, out, err = await run("fetchmail", "-f", str(rc_file), "--nosyslog", "--nodetach",
                             "--all", "--bsmtp", str(out_file),
                             env={"FETCHMAILHOME": str(tmp_path), "HOME": str(tmp_path)})
    assert rc == 0, (out, err)
    fetched = out_file.read_bytes()
    for i in range(3):
        assert f"Message {i}.".encode() in fetched
    # fetchmail deleted what it fetched (DELE + QUIT: the UPDATE state)
    assert await pop3.store.mail.list_uids(pop3.inbox_id) == []
