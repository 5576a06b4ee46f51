"""The ERP: an order API that validates what it is given and keeps orders in memory.

Every route needs a credential: ``Authorization: Bearer …`` / ``Basic …`` or ``X-API-Key``
(any non-empty value; the scheme is stored on the order as ``auth_scheme``); none → 401.

``POST /erp/api/orders`` body::

    {"external_id": "shopify-1001", "currency": "USD",
     "customer": {"email": "bob@example.com", "name": "Bob"},  (an email or an id)
     "lines": [{"sku": "IPOD2008GREEN", "quantity": 1, "unit_price": "199.00"}],
     "totals": {"subtotal": "398.00", "tax": "11.94", "shipping": "0.00",
                "discount": "0.00", "total": "409.94"}}

Money is a decimal *string* (floats lose cents). ``totals.total`` must equal subtotal + tax +
shipping − discount; line sums are not checked against the subtotal (Shopify's own sample
order does not add up). Invalid → 422 ``{error: "validation_failed", fields: [...]}``.
``Idempotency-Key``: the same key answers the stored order (200, ``Idempotent-Replayed``)
instead of creating a second one. Without a key, a second order with the same
``external_id`` → 409 ``duplicate_external_id`` with the existing ``order_id``.
"""

from __future__ import annotations

import itertools
import threading
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StringConstraints,
    ValidationError,
    model_validator,
)
from starlette.requests import Request
from starlette.responses import JSONResponse

from sandbox.payloads import BadPayload, field_errors, read_json
from sandbox.recorder import auth_scheme, now_iso

router = APIRouter(prefix="/erp/api", tags=["erp"])

Money = Annotated[str, StringConstraints(pattern=r"^\d{1,12}(\.\d{1,4})?$")]


class Customer(BaseModel):
    model_config = ConfigDict(extra="allow")

    email: str | None = Field(None, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    name: str | None = None
    id: str | None = None

    @model_validator(mode="after")
    def _identified(self) -> Customer:
        if self.email is None and self.id is None:
            raise ValueError("a customer needs an email or an id")
        return self


class OrderLine(BaseModel):
    model_config = ConfigDict(extra="allow")

    sku: str = Field(min_length=1)
    quantity: StrictInt = Field(gt=0)
    unit_price: Money
    description: str | None = None


class Totals(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subtotal: Money
    tax: Money = "0.00"
    shipping: Money = "0.00"
    discount: Money = "0.00"
    total: Money


class OrderIn(BaseModel):
    model_config = ConfigDict(extra="allow")

    external_id: str = Field(min_length=1)
    currency: str = Field(pattern=r"^[A-Za-z]{3}$")
    customer: Customer
    lines: list[OrderLine] = Field(min_length=1)
    totals: Totals


def check_totals(order: OrderIn) -> list[dict[str, str]]:
    t = order.totals
    expected = Decimal(t.subtotal) + Decimal(t.tax) + Decimal(t.shipping) - Decimal(t.discount)
    if Decimal(t.total) != expected:
        message = f"total {t.total} != subtotal + tax + shipping - discount = {expected}"
        return [{"field": "totals.total", "message": message}]
    return []


class OrderBook:
    def __init__(self) -> None:
        self._orders: dict[str, dict[str, Any]] = {}
        self._by_key: dict[str, str] = {}
        self._by_external: dict[str, str] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def create(
        self, order: OrderIn, scheme: str, key: str | None
    ) -> tuple[int, dict[str, Any], bool]:
        """(status, body, replayed): 201 new, 200 replay of the key's order, 409 duplicate."""
        with self._lock:
            if key is not None and key in self._by_key:
                return 200, self._orders[self._by_key[key]], True
            existing = self._by_external.get(order.external_id)
            if existing is not None:
                body = {
                    "error": "duplicate_external_id",
                    "message": f"order {order.external_id} exists",
                    "order_id": existing,
                }
                return 409, body, False
            order_id = f"SO-{next(self._ids):06d}"
            stored = {
                "id": order_id,
                "status": "open",
                **order.model_dump(mode="json"),
                "currency": order.currency.upper(),
                "auth_scheme": scheme,
                "idempotency_key": key,
                "created_at": now_iso(),
            }
            self._orders[order_id] = stored
            self._by_external[order.external_id] = order_id
            if key is not None:
                self._by_key[key] = order_id
            return 201, stored, False

    def get(self, order_id: str) -> dict[str, Any] | None:
        with self._lock:
            return self._orders.get(order_id)

    def list(self, external_id: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            orders = list(self._orders.values())
        return [o for o in orders if external_id is None or o["external_id"] == external_id]

    def clear(self) -> None:
        with self._lock:
            self._orders.clear()
            self._by_key.clear()
            self._by_external.clear()


def _book(request: Request) -> OrderBook:
    book: OrderBook = request.app.state.sandbox.erp
    return book


def _unauthorized() -> JSONResponse:
    return JSONResponse(
        {"error": "unauthorized", "message": "send Authorization or X-API-Key"},
        status_code=401,
        headers={"WWW-Authenticate": 'Bearer realm="erp"'},
    )


@router.post("/orders")
async def create_order(request: Request) -> JSONResponse:
    scheme = auth_scheme(request.headers)
    if scheme is None:
        return _unauthorized()
    try:
        order = OrderIn.model_validate(await read_json(request))
    except BadPayload as exc:
        return JSONResponse({"error": "invalid_json", "message": str(exc)}, status_code=400)
    except ValidationError as exc:
        fields = field_errors(exc)
        return JSONResponse({"error": "validation_failed", "fields": fields}, status_code=422)
    if errors := check_totals(order):
        return JSONResponse({"error": "validation_failed", "fields": errors}, status_code=422)
    key = request.headers.get("idempotency-key", "").strip() or None
    status, body, replayed = _book(request).create(order, scheme, key)
    headers = {"Idempotent-Replayed": "true"} if replayed else None
    return JSONResponse(body, status_code=status, headers=headers)


@router.get("/orders/{order_id}")
async def get_order(order_id: str, request: Request) -> JSONResponse:
    if auth_scheme(request.headers) is None:
        return _unauthorized()
    order = _book(request).get(order_id)
    if order is None:
        return JSONResponse({"error": "not_found", "message": order_id}, status_code=404)
    return JSONResponse(order)


@router.get("/orders")
async def list_orders(request: Request, external_id: str | None = None) -> JSONResponse:
    if auth_scheme(request.headers) is None:
        return _unauthorized()
    orders = _book(request).list(external_id)
    return JSONResponse({"orders": orders, "count": len(orders)})
