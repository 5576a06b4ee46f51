"""Which TransformationLogic a data source uses, and one payload through it.

:data:`LOGIC` names every logic module; a DataSource names one (``logic``). :func:`transform`
parses the payload bytes as JSON and runs the logic; anything it cannot do — bytes that are
not JSON, a payload the logic refuses, an event that breaks the canonical model — is a
:class:`~synapseops.errors.PayloadUntransformable` with the reason, which the road sends to
the dead letter (never a crash, never a stalled partition).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from types import ModuleType
from typing import Any

from pydantic import ValidationError

from schemas.models import CanonicalEvent
from streams.aggregation.logic import bulk, github, market, otel
from streams.aggregation.logic.common import Context
from synapseops.errors import PayloadUntransformable

LOGIC: dict[str, ModuleType] = {module.NAME: module for module in (github, otel, market, bulk)}
Transform = Callable[[Any, Context], list[CanonicalEvent]]


def logic_of(name: str) -> ModuleType:
    try:
        return LOGIC[name]
    except KeyError:
        raise PayloadUntransformable(
            f"no TransformationLogic named {name!r}; known: {sorted(LOGIC)}", logic=name
        ) from None


def transform_payload(name: str, payload: Any, context: Context) -> list[CanonicalEvent]:
    """``payload`` (already parsed) through logic ``name``."""
    module = logic_of(name)
    function: Transform = module.transform
    try:
        return function(payload, context)
    except ValidationError as exc:
        raise PayloadUntransformable(
            f"{name}: the result breaks the canonical schema: {exc}", logic=name
        ) from exc


def transform(name: str, raw: bytes | None, context: Context) -> list[CanonicalEvent]:
    """The raw bytes (JSON) through logic ``name``."""
    if not raw:
        raise PayloadUntransformable(f"{name}: empty payload", logic=name)
    try:
        payload = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PayloadUntransformable(f"{name}: payload is not JSON: {exc}", logic=name) from exc
    return transform_payload(name, payload, context)
