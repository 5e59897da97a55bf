"""Access to the message corpus in tests/data/mime (see its README)."""

from __future__ import annotations

from pathlib import Path

from gateway.mime import normalise_line_endings

DATA = Path(__file__).resolve().parents[2] / "data" / "mime"


def corpus_names() -> list[str]:
    """Every message of the corpus, relative to ``DATA``."""
    files = sorted(DATA.glob("*.txt")) + sorted((DATA / "edge").glob("*.eml"))
    return [str(path.relative_to(DATA)) for path in files]


def load(name: str) -> bytes:
    """A corpus message in stored (CRLF) form."""
    return normalise_line_endings((DATA / name).read_bytes())


def crlf(*lines: str) -> bytes:
    """A CRLF message from lines: ``crlf("A: b", "", "body")``."""
    return "\r\n".join(lines).encode("utf-8")
