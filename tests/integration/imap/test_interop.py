"""Third-party clients: curl (imap://, with STARTTLS) and imapclient against the server."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.integration.imap.conftest import PASSWORD, USER, Server, message

pytestmark = pytest.mark.slow


def curl(s: Server, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["curl", "-sS", "--max-time", "20", "--cacert", str(s.cert),
                           "-u", f"{USER}:{PASSWORD}",
                           # curl prefers NTLM when offered; this mailbox has no NT hash
                           "--login-options", "AUTH=PLAIN", *args],
                          capture_output=True, timeout=30, check=False)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
async def test_curl_list_fetch_and_starttls(imap_server: Server) -> None:
    imap_server.set_policy(login_type="SecureLogin")
    await imap_server.deliver(message("Curl me", "Body for curl\r\n"))
    base = f"imap://{imap_server.host}:{imap_server.port}"
    # SecureLogin: curl must upgrade with STARTTLS (--ssl-reqd) before it may log in
    res = await asyncio.to_thread(curl, imap_server, "--ssl-reqd", "-k", base + "/")
    assert res.returncode == 0, res.stderr
    assert b'"/" INBOX' in res.stdout and b'"Sent Items"' in res.stdout
    res = await asyncio.to_thread(curl, imap_server, "--ssl-reqd", "-k",
                                  base + "/INBOX;UID=1")
    assert res.returncode == 0, res.stderr
    assert b"Subject: Curl me" in res.stdout and b"Body for curl" in res.stdout
    res = await asyncio.to_thread(curl, imap_server, "--ssl-reqd", "-k",
                                  base + "/INBOX?SUBJECT%20curl")
    assert b"* SEARCH 1" in res.stdout, res
    res = await asyncio.to_thread(curl, imap_server, base + "/")  # no TLS: refused
    assert res.returncode != 0


async def test_imapclient(imap_server: Server) -> None:
    imapclient = pytest.importorskip("imapclient")
    await imap_server.deliver(message("One"))
    await imap_server.deliver(message("Two"))

    def client() -> None:
        c = imapclient.IMAPClient(imap_server.host, port=imap_server.port, ssl=False,
                                  timeout=10)
        c.login(USER, PASSWORD)
        assert c.has_capability("IDLE") and c.has_capability("CONDSTORE")
        c.select_folder("INBOX")
        msgs = c.search(["NOT", "SEEN"])
        assert msgs == [1, 2]
        data = c.fetch(msgs, ["ENVELOPE", "FLAGS", "RFC822.SIZE", "BODYSTRUCTURE"])
        assert data[2][b"ENVELOPE"].subject == b"Two"
        c.add_flags([1], [imapclient.SEEN])
        assert c.get_flags([1])[1] == (b"\\Seen",)
        c.create_folder("Kept")
        c.move([2], "Kept")
        assert c.folder_status("Kept", ["MESSAGES"])[b"MESSAGES"] == 1
        assert any(name == "Kept" for _f, _d, name in c.list_folders())
        special = c.find_special_folder(imapclient.imapclient.SENT)
        assert special == "Sent Items"
        c.idle()
        c.idle_done()
        c.logout()
    await asyncio.to_thread(client)


@pytest.mark.skipif(shutil.which("mbsync") is None, reason="isync (mbsync) not installed")
async def test_mbsync_two_way(imap_server: Server, tmp_path: Path) -> None:
    await imap_server.deliver(message("Pulled one"))
    await imap_server.deliver(message("Pulled two"), folder="sent")
    local = tmp_path / "mail"
    local.mkdir()
    conf = tmp_path / "mbsyncrc"
    conf.write_text(f"""\
IMAPAccount gw
Host {imap_server.host}
Port {imap_server.port}
User {USER}
Pass {PASSWORD}
SSLType None
AuthMechs LOGIN

IMAPStore gw-remote
Account gw

MaildirStore gw-local
Path {local}/
Inbox {local}/INBOX
SubFolders Verbatim

Channel gw
Far :gw-remote:
Near :gw-local:
Patterns *
Create Both
Sync All
Expunge Both
SyncState *
""")

    def run() -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(["mbsync", "-c", str(conf), "-a"], capture_output=True,
                              timeout=60, check=False)
    res = await asyncio.to_thread(run)
    assert res.returncode == 0, res.stdout + res.stderr
    pulled = list((local / "INBOX" / "cur").iterdir()) + list((local / "INBOX" / "new")
                                                              .iterdir())
    assert len(pulled) == 1 and b"Pulled one" in pulled[0].read_bytes()
    sent = local / "Sent Items"
    assert any(b"Pulled two" in p.read_bytes() for p in (sent / "cur").iterdir()) or \
        any(b"Pulled two" in p.read_bytes() for p in (sent / "new").iterdir())
    (local / "INBOX" / "cur" / "1700000000.local:2,S").write_bytes(message("Pushed up"))
    res = await asyncio.to_thread(run)
    assert res.returncode == 0, res.stdout + res.stderr
    inbox = await imap_server.store.mail.get_special_folder(imap_server.mailbox_id, "inbox")
    msgs = await imap_server.store.mail.fetch(inbox.id, [(1, None)], with_summary=True)
    assert len(msgs) == 2 and any("Pushed up" in (m.summary_json or "") for m in msgs)
    assert any(m.seen for m in msgs)


@pytest.mark.skipif(shutil.which("fetchmail") is None, reason="fetchmail not installed")
async def test_fetchmail_imap(imap_server: Server, tmp_path: Path) -> None:
    await imap_server.deliver(message("Fetch me"))
    out = tmp_path / "out.mbox"
    rc = tmp_path / "fetchmailrc"
    rc.write_text(f'poll {imap_server.host} port {imap_server.port} protocol IMAP '
                  f'user "{USER}" password "{PASSWORD}" is "root" here '
                  f"sslproto '' keep mda \"/bin/sh -c 'cat >> {out}'\"\n")
    rc.chmod(0o600)

    def run() -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(["fetchmail", "-f", str(rc), "--nosyslog", "-N",
                               "--pidfile", str(tmp_path / "pid")], capture_output=True,
                              timeout=60, check=False, env={"HOME": str(tmp_path),
                                                            "PATH": "/usr/bin:/bin"})
    res = await asyncio.to_thread(run)
    assert res.returncode == 0, res.stdout + res.stderr
    assert b"Subject: Fetch me" in out.read_bytes()
