"""Differential check against Dovecot on randomly mutated corpus messages.

Not a test (needs Dovecot and root, like make_reference.py). Writes ``--count``
mutated copies of the corpus messages (line- or character-level edits, ``--seed``) to a
temporary folder, fetches Dovecot's answers and prints every message where our
BODYSTRUCTURE, ENVELOPE or a BODY[section] differs. Messages whose Dovecot
BODYSTRUCTURE has an empty type (an unparsable Content-Type, a documented deviation)
are only counted. Keep interesting cases by copying them to ``edge/`` and
regenerating the reference.

Usage (from the repository root):
    python tests/data/mime/differential.py --count 300 --seed 1 [--chars] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[2]))

import make_reference  # noqa: E402

from gateway.mime import analyse_message, normalise_line_endings  # noqa: E402

JUNK = [b"\n", b"--", b";", b'"', b"(", b")", b"<", b">", b"@", b",", b":", b"=", b" "]


def mutate(rng: random.Random, raw: bytes, chars: bool) -> bytes:
    if chars:
        data = bytearray(raw)
        for _ in range(rng.randint(1, 6)):
            if not data:
                break
            i = rng.randrange(len(data))
            if rng.random() < 0.5:
                del data[i : i + rng.randint(1, 3)]
            else:
                data[i:i] = rng.choice(JUNK)
        return bytes(data)
    lines = raw.split(b"\n")
    for _ in range(rng.randint(1, 5)):
        if not lines:
            break
        i = rng.randrange(len(lines))
        dashes = [line for line in lines if line.startswith(b"--")]
        op = rng.random()
        if op < 0.3:
            del lines[i]
        elif op < 0.5 and dashes:
            lines.insert(i, rng.choice(dashes))
        elif op < 0.6 and dashes:
            lines.insert(i, rng.choice(dashes).rstrip(b"-") + b"--")
        elif op < 0.75:
            lines.insert(i, b"")
        elif op < 0.85:
            lines = lines[:i]
        else:
            lines[i] += b"  x"
    return b"\n".join(lines)


def empty_type(bs: Any) -> bool:
    if isinstance(bs, list):
        if len(bs) >= 2 and isinstance(bs[0], str) and bs[1] == "":
            return True
        return any(empty_type(item) for item in bs)
    return False


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--chars", action="store_true", help="character-level edits")
    parser.add_argument("--keep", type=Path, help="write the mutated messages here")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    corpus = [
        re.sub(rb"\r\n|\r|\n", b"\n", path.read_bytes())
        for path in sorted(HERE.glob("*.txt")) + sorted((HERE / "edge").glob("*.eml"))
    ]
    folder = args.keep or Path(tempfile.mkdtemp(prefix="mime-differential-"))
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for k in range(args.count):
        path = folder / f"x{k:04d}.eml"
        path.write_bytes(mutate(rng, rng.choice(corpus), args.chars))
        files.append(path)
    make_reference.HERE = folder
    reference = make_reference.fetch(files)
    differing = unparsable = 0
    for name, expected in sorted(reference.items()):
        raw = normalise_line_endings((folder / name).read_bytes())
        summary = analyse_message(raw)
        if empty_type(expected["bodystructure"]):
            unparsable += 1
            continue
        notes = []
        if summary.bodystructure != expected["bodystructure"]:
            notes.append(
                f"  BODYSTRUCTURE\n    ours: {json.dumps(summary.bodystructure)}"
                f"\n    dovecot: {json.dumps(expected['bodystructure'])}"
            )
        if summary.envelope != expected["envelope"]:
            notes.append(
                f"  ENVELOPE\n    ours: {json.dumps(summary.envelope)}"
                f"\n    dovecot: {json.dumps(expected['envelope'])}"
            )
        for section, content in expected["sections"].items():
            found = summary.section_range(section)
            got = raw[found[0] : found[1]].decode("latin-1") if found else ""
            if got != content:
                notes.append(f"  BODY[{section}]\n    ours: {got!r}\n    dovecot: {content!r}")
        if notes:
            differing += 1
            print(f"===== {folder / name}")
            print("\n".join(notes))
    print(
        f"{differing} of {len(reference)} differ; {unparsable} with an unparsable "
        f"Content-Type skipped; messages in {folder}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
