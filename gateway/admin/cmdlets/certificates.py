"""Client-certificate mappings: Add-/Remove-CertificateMapping, Test-CertificateMapping.

Exchange maps a client certificate to a mailbox through Active Directory (the UPN in
the certificate, or an explicit altSecurityIdentities entry). The gateway keeps the
explicit entries in the store (``store.org`` certificate mappings); these cmdlets set
and remove them, and ``Test-CertificateMapping`` shows what a certificate file says
and which mailbox it maps to - the same mapper the logins use (auth.certificates),
so what is shown is what is enforced (docs/client-certificates.md).

Kinds: ``-Thumbprint`` (SHA-1 of the certificate, hex, colons and spaces allowed),
``-Subject`` (RFC 4514, as Test-CertificateMapping prints it), ``-Rfc822Name`` and
``-UserPrincipalName`` (a SAN value mapped to a mailbox that does not carry that
address), or ``-Certificate <file>`` (its thumbprint). Exactly one per call.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from pathlib import Path
from typing import Any, Protocol, cast

from auth.certificates import (
    CertificateError,
    CertificateMapper,
    parse_certificate,
    usability_problem,
)
from gateway.admin.cmdlets import lookup
from gateway.admin.cmdlets.mailboxes import MAILBOX_TYPES
from gateway.admin.errors import CmdletError
from gateway.admin.registry import REGISTRY, SHOULD_PROCESS, Invocation, Output, ParamSpec, Record

TYPE_NAME = "CertificateMapping"
MAX_CERTIFICATE_FILE = 64 * 1024

_KINDS: dict[str, str] = {
    "Thumbprint": "thumbprint",
    "Subject": "subject",
    "Rfc822Name": "rfc822",
    "UserPrincipalName": "upn",
}


class _CertificateOrg(Protocol):
    async def add_certificate_mapping(self, mailbox_id: int, kind: str, value: str) -> None: ...
    async def remove_certificate_mapping(self, mailbox_id: int, kind: str,
                                         value: str) -> None: ...
    async def find_mailbox_by_certificate(self, kind: str, value: str) -> Any: ...
    async def find_mailbox_for_login(self, *, address: str | None = None,
                                     account: str | None = None) -> Any: ...
    async def find_mailbox_by_address(self, address: str) -> Any: ...


def _org(inv: Invocation) -> _CertificateOrg:
    return cast(_CertificateOrg, inv.ctx.org)


def _read_der(path_text: str) -> bytes:
    """A certificate file, PEM or DER (blocking: run in a thread)."""
    path = Path(path_text)
    try:
        if path.stat().st_size > MAX_CERTIFICATE_FILE:
            raise CmdletError(f"{path}: larger than {MAX_CERTIFICATE_FILE} bytes; not a "
                              "certificate")
        raw = path.read_bytes()
    except OSError as exc:
        raise CmdletError(f"cannot read {path}: {exc.strerror}") from None
    if b"-----BEGIN CERTIFICATE-----" in raw:
        try:
            text = raw.decode("ascii")
            start = text.index("-----BEGIN CERTIFICATE-----")
            end = text.index("-----END CERTIFICATE-----", start) + 25
            return ssl.PEM_cert_to_DER_cert(text[start:end])
        except (UnicodeDecodeError, ValueError):
            raise CmdletError(f"{path}: not a readable PEM certificate") from None
    return raw


async def _certificate(inv: Invocation) -> bytes:
    der = await asyncio.to_thread(_read_der, str(inv.args["Certificate"]))
    try:
        parse_certificate(der)
    except CertificateError as exc:
        raise CmdletError(f"{inv.args['Certificate']}: {exc}") from None
    return der


async def _mapping(inv: Invocation) -> tuple[str, str]:
    given = [p for p in (*_KINDS, "Certificate") if p in inv.args]
    if len(given) != 1:
        raise CmdletError(f"{inv.cmdlet.name}: give exactly one of -Thumbprint, -Subject, "
                          "-Rfc822Name, -UserPrincipalName or -Certificate")
    param = given[0]
    if param == "Certificate":
        return "thumbprint", parse_certificate(await _certificate(inv)).thumbprint
    return _KINDS[param], str(inv.args[param])


_MAPPING_PARAMS = (
    ParamSpec("Identity", mandatory=True, position=0, pipeline=True,
              help="Name, SMTP address, UPN or id of the mailbox."),
    ParamSpec("Thumbprint", help="SHA-1 thumbprint of the certificate (hex)."),
    ParamSpec("Subject", help="Subject distinguished name (RFC 4514)."),
    ParamSpec("Rfc822Name", help="An rfc822Name (e-mail) subject alternative name."),
    ParamSpec("UserPrincipalName", help="A UPN otherName subject alternative name."),
    ParamSpec("Certificate", help="Path of a certificate file (PEM or DER): maps its "
              "thumbprint."),
)


@REGISTRY.cmdlet(
    "Add-CertificateMapping",
    synopsis="Maps client certificates to a mailbox explicitly.",
    description="An explicit mapping wins over the implicit ones (a UPN or e-mail "
                "address in the certificate that is the mailbox's own).",
    params=(*_MAPPING_PARAMS, *SHOULD_PROCESS),
    pipeline_types=MAILBOX_TYPES,
    examples=("Add-CertificateMapping alice -Thumbprint 3b1f...c2",
              "Add-CertificateMapping kiosk -Subject 'CN=Kiosk 7,O=Example'",
              "Add-CertificateMapping alice -Certificate /tmp/alice-phone.pem"),
)
async def add_certificate_mapping(inv: Invocation) -> list[Output]:
    mb = await lookup.mailbox(inv.ctx.org, str(inv.args["Identity"]))
    kind, value = await _mapping(inv)
    if not await inv.should_process(f"Add certificate mapping {kind} {value}", mb.name):
        return []
    await _org(inv).add_certificate_mapping(mb.id, kind, value)
    return []


@REGISTRY.cmdlet(
    "Remove-CertificateMapping",
    synopsis="Removes an explicit client-certificate mapping of a mailbox.",
    params=(*_MAPPING_PARAMS, *SHOULD_PROCESS),
    pipeline_types=MAILBOX_TYPES,
    confirm_impact="High",
    examples=("Remove-CertificateMapping alice -Thumbprint 3b1f...c2 -Confirm:$false",),
)
async def remove_certificate_mapping(inv: Invocation) -> list[Output]:
    mb = await lookup.mailbox(inv.ctx.org, str(inv.args["Identity"]))
    kind, value = await _mapping(inv)
    if not await inv.should_process(f"Remove certificate mapping {kind} {value}", mb.name):
        return []
    await _org(inv).remove_certificate_mapping(mb.id, kind, value)
    return []


@REGISTRY.cmdlet(
    "Test-CertificateMapping",
    synopsis="Shows what a client certificate says and which mailbox it maps to.",
    description="Reads the certificate file and runs the mapping the logins use. The "
                "TLS checks (trusted CA, CRL) happen in the handshake and are not "
                "repeated here.",
    params=(ParamSpec("Certificate", mandatory=True, position=0,
                      help="Path of a certificate file (PEM or DER)."),),
    examples=("Test-CertificateMapping /tmp/alice-phone.pem",),
)
async def test_certificate_mapping(inv: Invocation) -> list[Output]:
    der = await _certificate(inv)
    ident = parse_certificate(der)
    match = await CertificateMapper(_org(inv)).map(der)
    props: dict[str, object] = {
        "Subject": ident.subject,
        "Issuer": ident.issuer,
        "Thumbprint": ident.thumbprint.upper(),
        "NotAfter": ident.not_after.isoformat(),
        "Rfc822Names": list(ident.rfc822_names),
        "UserPrincipalNames": list(ident.upns),
        "ClientAuthentication": ident.client_auth,
        "Usable": usability_problem(ident, time.time()) is None,
        "Mailbox": match.login or "",
        "MappedBy": match.how,
        "Reason": match.reason,
    }
    return [Record(TYPE_NAME, ident.thumbprint, props,
                   ("Subject", "Thumbprint", "Mailbox", "MappedBy", "Reason"))]
