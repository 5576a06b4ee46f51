"""Structured logs: one JSON object per line, with the record's coordinates as fields.

Use ``log.info("settled", extra={"topic": t, "partition": p, "offset": o, "pipeline": n})``.
Settings hold secrets as ``SecretStr`` (it prints as ``**********``), and every record that
reaches the process's handler passes :class:`ScrubFilter` first: the message, the extra
fields, the traceback and the stack go through :func:`synapseops.redaction.scrub`, so a secret
quoted by an exception message (a target echoing a token back) never reaches a log file.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from synapseops.redaction import scrub, scrub_document

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class ScrubFilter(logging.Filter):
    """Scrubs a record in place before any handler formats it (it never drops one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_scrubbed", False):
            return True
        record.msg, record.args = scrub(record.getMessage()), None
        for key, value in list(record.__dict__.items()):
            if key in _STANDARD or key.startswith("_"):
                continue
            if isinstance(value, str):
                setattr(record, key, scrub(value))
            elif isinstance(value, dict | list | tuple):
                setattr(record, key, scrub_document(value))
            elif not isinstance(value, int | float | bool | type(None)):
                setattr(record, key, scrub(str(value)))
        if record.exc_info and not record.exc_text:
            record.exc_text = _TRACEBACKS.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        record.exc_info = None
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        record._scrubbed = True
        return True


_TRACEBACKS = logging.Formatter()


class JsonFormatter(logging.Formatter):
    def __init__(self, process_name: str) -> None:
        super().__init__()
        self.process_name = process_name

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "process": self.process_name,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc"] = record.exc_text
        return json.dumps(entry, default=str)


def configure_logging(process_name: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(process_name))
    handler.addFilter(ScrubFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Chatty libraries: their INFO lines are connection noise, not events.
    for noisy in ("aiokafka", "kafka", "httpx", "uvicorn.access", "faust", "mode"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(name)
