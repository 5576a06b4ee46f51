"""Identifiers: time-ordered record ids and W3C trace context (``traceparent``)."""

from __future__ import annotations

import os
import random
import re
import time
import uuid

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


def new_id(prefix: str) -> str:
    """``prefix_`` + 12 hex digits of Unix milliseconds + 16 random hex digits.

    Sorting ids sorts by creation time, which keeps B-tree inserts local and makes logs
    readable; 64 random bits make a clash within one millisecond negligible.
    """
    return f"{prefix}_{int(time.time() * 1000):012x}{os.urandom(8).hex()}"


def new_uuid() -> uuid.UUID:
    return uuid.uuid4()


def new_traceparent() -> str:
    """A fresh sampled W3C trace context: ``00-<trace-id>-<parent-id>-01``.

    Trace and span ids need to be unique, not unguessable: like OpenTelemetry's own
    ``RandomIdGenerator`` they come from :func:`random.getrandbits` (reseeded in a forked
    child), a few hundred ns where two ``os.urandom`` system calls took microseconds each
    per record. All zeros is invalid in W3C trace context, hence the ``or 1``.
    """
    return f"00-{_random_id(128):032x}-{_random_id(64):016x}-01"


def _random_id(bits: int) -> int:
    return random.getrandbits(bits) or 1


def parse_traceparent(value: str | None) -> tuple[str, str] | None:
    """``(trace_id, parent_id)`` of a valid ``traceparent``, else ``None``."""
    if not value:
        return None
    match = _TRACEPARENT.match(value.strip().lower())
    if not match or set(match.group(1)) == {"0"} or set(match.group(2)) == {"0"}:
        return None
    return match.group(1), match.group(2)


def child_traceparent(parent: str | None) -> str:
    """Continue a trace for the next hop (same trace id, new span); start one if none."""
    parsed = parse_traceparent(parent)
    if parsed is None:
        return new_traceparent()
    return f"00-{parsed[0]}-{_random_id(64):016x}-01"


def trace_id_of(traceparent: str | None) -> str | None:
    parsed = parse_traceparent(traceparent)
    return parsed[0] if parsed else None
