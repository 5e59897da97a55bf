"""Render the key table of docs/configuration.md from the settings schema.

Usage: ``python -m gateway.config_docs docs/configuration.md`` rewrites the table
between the ``keys:start`` / ``keys:end`` markers; a test checks the file is current.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from gateway.config import SCHEMA

START, END = "<!-- keys:start -->", "<!-- keys:end -->"


def render_table() -> str:
    rows = ["| key | expected | default | meaning |", "|---|---|---|---|"]
    for key in SCHEMA:
        default = json.dumps(key.default, ensure_ascii=False)
        text = key.help.replace("|", "\\|")
        rows.append(f"| `{key.path}` | {key.expected} | `{default}` | {text} |")
    return "\n".join(rows)


def rewrite(doc: str) -> str:
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    if not pattern.search(doc):
        raise ValueError(f"the document has no {START} ... {END} block")
    return pattern.sub(lambda _m: f"{START}\n{render_table()}\n{END}", doc)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m gateway.config_docs docs/configuration.md", file=sys.stderr)
        return 2
    path = Path(argv[0])
    path.write_text(rewrite(path.read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
