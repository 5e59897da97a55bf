"""Whatever the operator types, run_line answers with output or a CmdletError.

A seeded random mix of real cmdlets, parameters, values and syntax characters is run
against the in-memory store; any other exception (a traceback for the operator) fails.
"""

from __future__ import annotations

import random

import pytest

from gateway.admin import CmdletError, run_line
from gateway.admin.runner import default_registry

FRAGMENTS = [
    "-", "--", "-Identity", "-Name", "-Name:", "-DomainName", "-DomainType", "-MakeDefault",
    "-Password", "-EmailAddresses", "-NtlmEnabled", "-ImapEnabled:$false", "-Confirm:$false",
    "-WhatIf", "-ResultSize", "-Property", "-E", "-P", "alice", "bob", "example.test",
    "*.example.test", "a@example.test", "SMTP:x@example.test", "x@other.test", "'S3cret!pass'",
    '"quoted `" value"', "'it''s'", "$true", "$false", "$null", "$x", "1", "0", "-5", "10MB",
    "Authoritative", "InternalRelay", "ExternalRelay", ",", "|", ";", "(", ")", "@{", "}", "=",
    "@{Add='y@example.test'}", "@{Remove=alice@example.test}", "'", '"', "`", "#", "{", "&",
    "\u2013Name", "\u201cq\u201d", "*", "?", "\x00", "\x1b[2J", "\u00e9", "Format-List",
    "Format-Table", "ConvertTo-Json", "fl", "Get-Help", "Get-Command",
    "(ConvertTo-SecureString 'Pa55word!' -AsPlainText)",
]


def random_line(rng: random.Random, cmdlets: list[str]) -> str:
    parts = [rng.choice(cmdlets)]
    for _ in range(rng.randint(0, 8)):
        if rng.random() < 0.1:
            parts.append(rng.choice(["|", ";"]))
            parts.append(rng.choice(cmdlets))
        parts.append(rng.choice(FRAGMENTS))
    return (" " if rng.random() < 0.8 else "").join(parts)


@pytest.mark.parametrize("seed", range(4))
async def test_random_lines_never_escape_as_other_exceptions(ctx, seed):
    await run_line(ctx, "New-AcceptedDomain example -DomainName example.test")
    await run_line(ctx, "New-Mailbox alice -EmailAddresses y@example.test")
    cmdlets = [s.name for s in default_registry().all()] + ["Get-Mailbx", "fl", "x"]
    rng = random.Random(seed)
    outcomes = {"ok": 0, "error": 0}
    for _ in range(400):
        line = random_line(rng, cmdlets)
        for output_format in (None, "json"):
            try:
                result = await run_line(ctx, line, output_format=output_format)
            except CmdletError as exc:
                assert str(exc) and "Traceback" not in str(exc), line
                assert "internal error" not in str(exc), line
                outcomes["error"] += 1
            else:
                assert isinstance(result, str)
                assert "Pa55word!" not in result, line
                outcomes["ok"] += 1
    assert outcomes["ok"] and outcomes["error"]
