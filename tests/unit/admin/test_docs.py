"""docs/cmdlets.md is generated from the registry and must match it."""

from __future__ import annotations

from pathlib import Path

from gateway.admin.docs import reference_markdown
from gateway.admin.runner import default_registry

DOC = Path(__file__).resolve().parents[3] / "docs" / "cmdlets.md"


def test_docs_match_the_registry():
    assert DOC.read_text(encoding="utf-8") == reference_markdown(), (
        "docs/cmdlets.md is out of date: run "
        "`.venv/bin/python -m gateway.admin.docs > docs/cmdlets.md`"
    )


def test_docs_list_every_cmdlet_and_parameter():
    text = DOC.read_text(encoding="utf-8")
    for spec in default_registry().all():
        assert f"### {spec.name}\n" in text
        section = text.split(f"### {spec.name}\n", 1)[1].split("\n### ", 1)[0]
        for p in spec.params:
            assert f"| `-{p.name}` |" in section, (spec.name, p.name)
