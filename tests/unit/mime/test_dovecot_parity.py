"""BODYSTRUCTURE, ENVELOPE and section offsets against Dovecot 2.3, the reference peer.

The expected values come from tests/data/mime/dovecot_reference.json (see the README
there); every message of the corpus is compared, except for the few documented places
where we follow the RFC rather than a Dovecot quirk (``DEVIATIONS``; the values we
produce there are pinned in test_structure.py).
"""

from __future__ import annotations

import json

import pytest

from gateway.mime import analyse_message
from tests.unit.mime.corpus import DATA, corpus_names, load

REFERENCE = json.loads((DATA / "dovecot_reference.json").read_text("utf-8"))["messages"]

# message -> aspects ("bodystructure", "envelope", "section:<spec>") not compared, why.
DEVIATIONS: dict[str, tuple[set[str], str]] = {
    "edge/p04.eml": ({"bodystructure"}, "Content-Type without subtype: RFC 2045 §5.2 default"),
    "msg_14.txt": ({"bodystructure"}, "Content-Type without subtype: RFC 2045 §5.2 default"),
    "edge/p10.eml": ({"bodystructure"}, "unquoted boundary=----=_Part_1 kept whole"),
    "edge/p25.eml": ({"envelope"}, "an empty address list element is skipped"),
    "msg_33.txt": (
        {"bodystructure", "section:1", "section:1.MIME", "section:2", "section:2.MIME"},
        "RFC 2231 encoded boundary* honoured",
    ),
}


def test_reference_covers_the_corpus() -> None:
    assert sorted(REFERENCE) == sorted(corpus_names())


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_bodystructure_and_envelope_match_dovecot(name: str) -> None:
    expected = REFERENCE[name]
    skipped = DEVIATIONS.get(name, (set(), ""))[0]
    summary = analyse_message(load(name))
    if "bodystructure" not in skipped:
        assert summary.bodystructure == expected["bodystructure"]
    else:
        assert summary.bodystructure != expected["bodystructure"], "deviation no longer needed"
    if "envelope" not in skipped:
        assert summary.envelope == expected["envelope"]
    else:
        assert summary.envelope != expected["envelope"], "deviation no longer needed"


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_sections_slice_like_dovecot(name: str) -> None:
    raw = load(name)
    skipped = DEVIATIONS.get(name, (set(), ""))[0]
    summary = analyse_message(raw)
    sections = REFERENCE[name]["sections"]
    assert sections, "the reference lists at least HEADER and TEXT"
    for section, content in sections.items():
        found = summary.section_range(section)
        # Dovecot answers "" for a part that does not exist (RFC 9051 §6.4.5).
        got = raw[found[0] : found[1]].decode("latin-1") if found else ""
        if f"section:{section}" in skipped:
            assert got != content, f"deviation for {section} no longer needed"
        else:
            assert got == content, f"BODY[{section}] of {name}"
