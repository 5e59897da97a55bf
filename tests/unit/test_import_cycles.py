"""The entry points import on their own in a fresh interpreter.

A circular import only shows when a module is the *first* one loaded (as
``python -m gateway`` and the SMTP worker processes load theirs); a test process that
has already imported everything would never see it. The modules below are those that
start a process or sit where packages meet (config, store, policy, directories).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIRST_LOADED = (
    "gateway.cli", "gateway.config", "gateway.node", "gateway.store",
    "gateway.connectors", "gateway.protocol_settings", "gateway.admin",
    "gateway.relay", "auth.policy", "auth.service", "auth.directories.ldap",
    "auth.directories.local", "protocols.smtp.worker", "protocols.imap.service",
    "protocols.pop3.service",
)


@pytest.mark.parametrize("module", FIRST_LOADED)
def test_module_imports_first(module: str) -> None:
    r = subprocess.run([sys.executable, "-c", f"import {module}"], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
