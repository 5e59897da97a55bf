"""Add-/Remove-/Test-CertificateMapping through the admin shell, on the real store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from auth.certificates import parse_certificate
from gateway.admin import AdminContext, CmdletError, run_line
from tests.pki import TestPki


@pytest.fixture
async def ctx(store: Any) -> AdminContext:
    await store.org.create_accepted_domain("example", "example.test")
    await store.org.create_mailbox(name="alice", primary_smtp_address="alice@example.test")
    await store.org.create_mailbox(name="kiosk", primary_smtp_address="kiosk@example.test")
    return AdminContext(store=store, server_name="mail.example.test")


async def test_map_test_and_unmap_by_certificate_file(ctx: AdminContext,
                                                      tmp_path: Path) -> None:
    pki = TestPki(tmp_path)
    ca = pki.ca("Admin CA")
    cert = pki.client(ca, "Kiosk 7", email="alice@example.test")

    async def mapped() -> dict[str, Any]:
        out = await run_line(ctx, f"Test-CertificateMapping '{cert.cert_file}'",
                             output_format="json")
        record = json.loads(out)
        return record[0] if isinstance(record, list) else record

    before = await mapped()
    assert before["Mailbox"] == "alice@example.test"
    assert before["MappedBy"] == "rfc822 alice@example.test"
    assert before["Thumbprint"] == parse_certificate(cert.der).thumbprint.upper()

    await run_line(ctx, f"Add-CertificateMapping kiosk -Certificate '{cert.cert_file}'")
    after = await mapped()
    assert (after["Mailbox"], after["MappedBy"]) == ("kiosk@example.test",
                                                     "explicit thumbprint")
    thumb = ":".join(after["Thumbprint"][i:i + 2] for i in range(0, 40, 2))
    await run_line(ctx, f"Remove-CertificateMapping kiosk -Thumbprint '{thumb}' "
                        "-Confirm:$false")
    assert (await mapped())["MappedBy"] == "rfc822 alice@example.test"

    # explicit beats implicit ...
    await run_line(ctx, "Add-CertificateMapping kiosk -Subject 'CN=Kiosk 7'")
    assert (await mapped())["MappedBy"] == "explicit subject"
    # ... and two explicit mappings naming different mailboxes are refused
    await run_line(ctx, "Add-CertificateMapping alice -Rfc822Name alice@example.test")
    assert (await mapped())["Mailbox"] == ""
    assert "2 different mailboxes" in (await mapped())["Reason"]


async def test_refusals(ctx: AdminContext, tmp_path: Path) -> None:
    with pytest.raises(CmdletError, match="exactly one"):
        await run_line(ctx, "Add-CertificateMapping alice")
    with pytest.raises(CmdletError, match="exactly one"):
        await run_line(ctx, "Add-CertificateMapping alice -Thumbprint ab -Subject 'CN=x'")
    with pytest.raises(CmdletError, match="hexadecimal"):
        await run_line(ctx, "Add-CertificateMapping alice -Thumbprint nothex")
    junk = tmp_path / "junk.pem"
    junk.write_bytes(b"hello")
    with pytest.raises(CmdletError, match="unreadable client certificate"):
        await run_line(ctx, f"Test-CertificateMapping '{junk}'")
    with pytest.raises(CmdletError, match="cannot read"):
        await run_line(ctx, f"Test-CertificateMapping '{tmp_path / 'missing.pem'}'")
    await run_line(ctx, "Add-CertificateMapping alice -Subject 'CN=Shared'")
    with pytest.raises(CmdletError, match="mapped to another mailbox"):
        await run_line(ctx, "Add-CertificateMapping kiosk -Subject 'cn=shared'")
    with pytest.raises(CmdletError):
        await run_line(ctx, "Remove-CertificateMapping kiosk -Subject 'CN=Shared' "
                            "-Confirm:$false")
    out = await run_line(ctx, "Add-CertificateMapping kiosk -Rfc822Name k@x.test -WhatIf")
    assert "What if" in out
