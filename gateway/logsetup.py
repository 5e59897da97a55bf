"""Process-wide logging: readable text for people or one JSON object per line.

Role: configure the root logger once from ``LoggingSettings``. Structured context is
passed with ``extra={"ctx": {...}}`` and appears as key=value (text) or fields (JSON).
Invariant: secrets never reach a log; callers pass login names, never passwords.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from gateway.config import LoggingSettings


class TextFormatter(logging.Formatter):
    """``2026-11-28T23:50:01Z info gateway.serve: message key=value``."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created))
        text = f"{stamp} {record.levelname.lower()} {record.name}: {record.getMessage()}"
        ctx = getattr(record, "ctx", None)
        if isinstance(ctx, dict) and ctx:
            text += " " + " ".join(f"{k}={v}" for k, v in ctx.items())
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg and any ``ctx`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created)),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        ctx = getattr(record, "ctx", None)
        if isinstance(ctx, dict):
            doc.update({str(k): v for k, v in ctx.items()})
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


def configure_logging(settings: LoggingSettings) -> None:
    handler: logging.Handler
    if settings.file is not None:
        settings.file.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(settings.file, encoding="utf-8")
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.level.upper())
    # Third-party chatter stays at warning unless we debug.
    if settings.level != "debug":
        for noisy in ("uvicorn.access", "mail.log", "asyncio"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
