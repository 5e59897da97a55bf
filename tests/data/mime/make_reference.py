"""Regenerate dovecot_reference.json: Dovecot's view of every message in this folder.

Not a test. Needs Dovecot's imap binary (Debian: ``apt-get install dovecot-imapd``) and
root (it runs ``/usr/lib/dovecot/imap`` in PREAUTH mode as uid 65534 on a temporary
Maildir). For every ``*.txt`` and ``edge/*.eml`` message (CRLF-normalised) it records
Dovecot's BODYSTRUCTURE and ENVELOPE, and BODY[section] for HEADER, TEXT and, for each
part number in the BODYSTRUCTURE, ``n``, ``n.MIME`` and (message/rfc822) ``n.HEADER``,
``n.TEXT``. Strings in ENVELOPE/BODYSTRUCTURE are UTF-8 decoded with replacement;
section contents are latin-1 decoded (byte exact).

Usage (from the repository root):
    python tests/data/mime/make_reference.py > tests/data/mime/dovecot_reference.json
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
IMAP = "/usr/lib/dovecot/imap"


def normalise(raw: bytes) -> bytes:
    return re.sub(rb"\r\n|\r|\n", b"\r\n", raw)


def parse(data: bytes, i: int) -> tuple[Any, int]:
    """One IMAP value at ``data[i]``: list, bytes (string/literal), int, None or atom."""
    while data[i : i + 1] == b" ":
        i += 1
    c = data[i : i + 1]
    if c == b"(":
        i += 1
        out = []
        while True:
            while data[i : i + 1] == b" ":
                i += 1
            if data[i : i + 1] == b")":
                return out, i + 1
            value, i = parse(data, i)
            out.append(value)
    if c == b'"':
        i += 1
        buf = bytearray()
        while data[i : i + 1] != b'"':
            if data[i : i + 1] == b"\\":
                i += 1
            buf += data[i : i + 1]
            i += 1
        return bytes(buf), i + 1
    if c in (b"{", b"~"):
        if c == b"~":
            i += 1
        j = data.index(b"}", i)
        n = int(data[i + 1 : j])
        start = j + 3
        return data[start : start + n], start + n
    j = i
    while data[j : j + 1] not in (b" ", b")", b"(", b"\r", b"["):
        j += 1
    if data[j : j + 1] == b"[":
        j = data.index(b"]", j) + 1
    token = data[i:j].decode()
    if token == "NIL":
        return None, j
    if token.isdigit():
        return int(token), j
    return ("atom", token), j


def text(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, list):
        return [text(v) for v in value]
    return value


def part_numbers(bs: list[Any], prefix: str, out: list[tuple[str, bool]]) -> None:
    """Part numbers (RFC 3501 §6.4.5) in a BODYSTRUCTURE; True marks message/rfc822."""
    if isinstance(bs[0], list):  # multipart
        for index, child in enumerate([b for b in bs if isinstance(b, list)][: len(bs)], 1):
            if not isinstance(child[0], (list, bytes)):
                break
            part_numbers_child(child, f"{prefix}{index}", out)
        return
    part_numbers_child(bs, prefix + "1", out)


def part_numbers_child(bs: list[Any], number: str, out: list[tuple[str, bool]]) -> None:
    if isinstance(bs[0], list):
        children = []
        for item in bs:
            if not isinstance(item, list):
                break
            children.append(item)
        for index, child in enumerate(children, 1):
            part_numbers_child(child, f"{number}.{index}", out)
        out.append((number, False))
        return
    is_message = bs[0].lower() == b"message" and bs[1].lower() == b"rfc822" and len(bs) > 9
    out.append((number, is_message))
    if is_message:
        inner = bs[8]
        if isinstance(inner[0], list):
            part_numbers(inner, number + ".", out)
        else:
            part_numbers_child(inner, number + ".1", out)


def fetch(messages: list[Path]) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="dovecot-ref-"))
    try:
        for sub in ("cur", "new", "tmp"):
            (root / "Maildir" / sub).mkdir(parents=True)
        conf = root / "dovecot.conf"
        conf.write_text(
            f"mail_location = maildir:{root}/Maildir\nlog_path = {root}/log\nssl = no\n"
            "protocols = imap\nmail_uid = 65534\nmail_gid = 65534\n"
            "first_valid_uid = 0\nfirst_valid_gid = 0\n"
        )
        for k, path in enumerate(messages):
            (root / "Maildir" / "cur" / f"{1000 + k}.m{k}:2,").write_bytes(
                normalise(path.read_bytes())
            )
        subprocess.run(["chown", "-R", "65534:65534", str(root)], check=True)
        os.chmod(root, 0o777)
        env = dict(os.environ, USER="nobody", HOME=str(root), MAIL=f"maildir:{root}/Maildir")

        def run(commands: list[str]) -> bytes:
            script = "a SELECT INBOX\r\n" + "".join(c + "\r\n" for c in commands) + "z LOGOUT\r\n"
            return subprocess.run(
                [IMAP, "-c", str(conf)],
                input=script.encode(),
                env=env,
                capture_output=True,
                timeout=120,
                check=True,
            ).stdout

        def responses(out: bytes) -> dict[int, dict[str, Any]]:
            result: dict[int, dict[str, Any]] = {}
            pos = 0
            pattern = re.compile(rb"\* (\d+) FETCH ")
            while (m := pattern.search(out, pos)) is not None:
                value, pos = parse(out, m.end())
                items = result.setdefault(int(m.group(1)), {})
                for key, item in zip(value[0::2], value[1::2], strict=True):
                    items[key[1]] = item
            return result

        first = responses(run(["f FETCH 1:* (BODYSTRUCTURE ENVELOPE)"]))
        commands = []
        for seq in range(1, len(messages) + 1):
            numbers: list[tuple[str, bool]] = []
            part_numbers(first[seq]["BODYSTRUCTURE"], "", numbers)
            sections = ["HEADER", "TEXT"]
            for number, is_message in numbers:
                sections += [number, number + ".MIME"]
                if is_message:
                    sections += [number + ".HEADER", number + ".TEXT"]
            items = " ".join(f"BODY.PEEK[{s}]" for s in sections)
            commands.append(f"f{seq} FETCH {seq} ({items})")
        second = responses(run(commands))
        reference = {}
        for seq, path in enumerate(messages, 1):
            sections_out = {
                key[5:-1]: value.decode("latin-1")
                for key, value in second[seq].items()
                if key.startswith("BODY[")
            }
            reference[str(path.relative_to(HERE))] = {
                "bodystructure": text(first[seq]["BODYSTRUCTURE"]),
                "envelope": text(first[seq]["ENVELOPE"]),
                "sections": sections_out,
            }
        return reference
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> int:
    messages = sorted(HERE.glob("*.txt")) + sorted((HERE / "edge").glob("*.eml"))
    version = subprocess.run(["dovecot", "--version"], capture_output=True, text=True).stdout
    reference = {"dovecot": version.strip(), "messages": fetch(messages)}
    json.dump(reference, sys.stdout, indent=1, sort_keys=True, ensure_ascii=False)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
