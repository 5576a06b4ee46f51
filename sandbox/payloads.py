"""Reading request bodies and shaping validation errors the same way in every target."""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request


class BadPayload(ValueError):
    pass


async def read_json(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        raise BadPayload("request body is empty; JSON expected")
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise BadPayload(f"request body is not JSON: {exc}") from exc


def field_errors(exc: ValidationError) -> list[dict[str, str]]:
    """pydantic errors as ``[{field: "lines[0].unit_price", message: ...}]``."""
    errors = []
    for error in exc.errors(include_url=False):
        field = ""
        for part in error["loc"]:
            field += f"[{part}]" if isinstance(part, int) else (f".{part}" if field else str(part))
        errors.append({"field": field or "(body)", "message": error["msg"]})
    return errors
