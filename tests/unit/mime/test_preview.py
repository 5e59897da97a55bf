"""The preview collapses a growing prefix of the body; its result must be the one the
whole scanned body gives (gateway/mime/preview.py)."""

from __future__ import annotations

import html as html_lib
import random
import re

import pytest

from gateway.mime import analyse_message, limits

_WS = re.compile(r"\s+")
_HTML_SKIP = re.compile(r"<(script|style|head|title)\b.*?(</\1\s*>|$)", re.I | re.S)
_HTML_TAG = re.compile(r"<[^>]*>?", re.S)


def reference(body: str, *, html: bool) -> str:
    """The preview computed on the whole scanned prefix at once."""
    text = body.encode()[:limits.PREVIEW_SCAN].decode("utf-8", "replace")
    if html:
        text = _HTML_SKIP.sub(" ", text)
        text = html_lib.unescape(_HTML_TAG.sub(" ", text))
    text = _WS.sub(" ", text).strip()
    return text[:limits.PREVIEW_CHARS].rstrip()


def message(body: str, subtype: str) -> bytes:
    return (f"From: a@example.test\r\nSubject: s\r\nContent-Type: text/{subtype}; "
            f"charset=utf-8\r\n\r\n{body}").encode()


@pytest.mark.parametrize("seed", range(40))
def test_prefix_collapse_equals_whole_text(seed: int) -> None:
    rng = random.Random(seed)
    html = seed % 2 == 1
    pieces = [" ", "\r\n", "\t\t", "word", "&amp;", "&lt;", "é", "x" * 50,
              " " * 300, "\r\n" * 40]
    if html:
        pieces += ["<p>", "</p>", "<a href='x'>", "<script>var a = 1;", "</script>",
                   "<style>p{}</style>", "<b", ">"]
    body = "".join(rng.choice(pieces) for _ in range(rng.randrange(0, 3000)))
    summary = analyse_message(message(body, "html" if html else "plain"))
    assert summary.preview == reference(body, html=html)


def test_long_plain_body_reads_only_what_it_needs() -> None:
    body = "La de da de da 1.\r\n" * 6000
    summary = analyse_message(message(body, "plain"))
    assert summary.preview == reference(body, html=False)
    assert len(summary.preview) == limits.PREVIEW_CHARS
