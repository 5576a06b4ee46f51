"""What the management routes share: exact JSON bodies in and out.

(Store errors need nothing here: ``api/main.py`` answers every
:class:`~synapseops.errors.RecordError` with its 404/409/422.)

- :func:`exact_body` decodes a request body with :func:`streams.mapping.load_payload` (numbers
  as ``Decimal``, big ints exact) and validates it; FastAPI's own body parsing would turn
  ``409.94`` into a float and echo the whole input (secrets included) in a 422.
- :func:`exact_json` answers with :func:`streams.mapping.dump_output`, so Decimals in rules and
  mapped output leave digit for digit (FastAPI's encoder writes them as floats).
"""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import HTTPException, Request, status
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError

from streams.mapping import dump_output, jsonable, load_payload
from synapseops.errors import Undecodable

Model = TypeVar("Model", bound=BaseModel)


def validation_detail(exc: ValidationError) -> list[dict[str, Any]]:
    """pydantic's errors without ``input``/``ctx``: they may hold a secret the caller sent."""
    return [
        {"loc": list(error["loc"]), "msg": error["msg"], "type": error["type"]}
        for error in exc.errors(include_url=False, include_input=False, include_context=False)
    ]


async def exact_body(request: Request, model: type[Model]) -> Model:
    try:
        raw = load_payload(await request.body())
    except Undecodable as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, validation_detail(exc)) from None


def exact_json(content: Any, status_code: int = 200) -> Response:
    return Response(dump_output(content), status_code=status_code, media_type="application/json")


def body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` documenting a body that the route reads itself."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        }
    }


def jsonable_row(row: dict[str, Any]) -> dict[str, Any]:
    return {key: jsonable(value) for key, value in row.items()}
