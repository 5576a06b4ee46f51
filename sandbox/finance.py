"""The finance ledger: settlements that move money, guarded by a required ``Idempotency-Key``.

``POST /finance/v1/settlements`` with ``{payment_id, amount, currency, kind, ...}``:

* 400 ``idempotency_key_required`` without the header; 400 ``invalid_request`` (with
  ``fields``) when ``amount`` is not a positive integer of minor units, ``currency`` not three
  letters (kept as sent), ``kind`` not charge/refund/dispute.
* 201 ``{reference: "fin_...", ...}`` and one ledger entry per accepted key.
* The same key again: same body → the stored answer replayed with ``Idempotent-Replayed:
  true``; different body → 422; while the first is still in flight → 409.
* Business refusals come from :class:`FinanceRules` (default: ``payment_id`` starting with
  ``pi_reject`` → 402 ``{"error": "account_frozen"}``); they are stored and replayed too.
  ``PUT /_sandbox/finance/rules`` changes them.
* Keys are kept ``idempotency_retention_s`` after their answer (24 h by default, Stripe's
  figure); after that the same key books again, as with a real finance API. A rule of 0 lets
  a test play "a day later".

``POST /finance/v1/settlements/batch`` with ``{"items": [{"idempotency_key", "body"}, ...]}``
(at most :data:`BATCH_LIMIT`) books many entries in one request and answers 200 with one result
per item, in order: ``{"results": [{"idempotency_key", "status", "body", "replayed"}]}``. Each
item is keyed and stored exactly like a single ``POST`` of its body (the two share one key
store, so a key first sent alone replays in a batch and the other way round); per item:
201 booked, the stored answer replayed (``replayed: true``), 422 ``invalid_request`` for an
item without a key or with an invalid body, 409 ``idempotency_key_reused`` for a key sent
before with another body, 409 ``idempotency_key_in_flight`` while another request holds the
key, a business refusal as its rule says. The injected faults and latency apply to the batch
request as a whole (a gateway in front of finance fails or delays the whole request): the keys
are claimed while the latency is spent, so a client that timed out finds them booked.
``FinanceRules.batch_api`` false plays a ledger without the batch API: the route answers 404.

``GET /finance/v1/settlements/{id}`` → 200 with the ledger entry, or 404 ``not_found``; ``id``
is finance's ``reference`` (``fin_…``) or the client's own ``settlement_id`` (sent in the
booking's body), so a client that never heard the answer of a booking can ask whether it
happened — whatever the key retention.
"""

from __future__ import annotations

import secrets
import threading
import time
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse

from sandbox.gate import simulate_work
from sandbox.idempotency import Claim, ClaimState, IdempotencyStore, StoredResponse, fingerprint
from sandbox.payloads import BadPayload, field_errors, read_json
from sandbox.recorder import now_iso

router = APIRouter(prefix="/finance", tags=["finance"])

SETTLEMENTS_PATH = "/finance/v1/settlements"
BATCH_LIMIT = 1000


class SettlementRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    payment_id: str = Field(min_length=1)
    amount: StrictInt = Field(gt=0)
    currency: str = Field(pattern=r"^[A-Za-z]{3}$")
    kind: Literal["charge", "refund", "dispute"]
    # The client's own id of the entry; what GET /v1/settlements/{id} also finds it by.
    settlement_id: str | None = Field(default=None, min_length=1, max_length=512)


class Refusal(BaseModel):
    status: int = Field(402, ge=400, le=499)
    error: str


class FinanceRules(BaseModel):
    """Business rules that make finance say no on purpose."""

    reject_prefixes: dict[str, Refusal] = Field(
        default_factory=lambda: {"pi_reject": Refusal(status=402, error="account_frozen")}
    )
    max_amount: int | None = Field(default=None, gt=0)
    idempotency_retention_s: float = Field(default=24 * 3600.0, ge=0)
    # False: this ledger has no batch API (POST /v1/settlements/batch answers 404).
    batch_api: bool = True

    def refusal(self, request: SettlementRequest) -> Refusal | None:
        for prefix, refusal in self.reject_prefixes.items():
            if request.payment_id.startswith(prefix):
                return refusal
        if self.max_amount is not None and request.amount > self.max_amount:
            return Refusal(status=402, error="amount_exceeds_limit")
        return None


class ExpiringKeys(IdempotencyStore):
    """An :class:`IdempotencyStore` that forgets a key ``retention_s`` after its answer."""

    def __init__(self) -> None:
        super().__init__()
        self._answered_at: dict[str, float] = {}

    def begin_within(self, key: str, request_fingerprint: str, retention_s: float) -> Claim:
        now = time.monotonic()
        with self._lock:
            answered = self._answered_at.get(key)
            if answered is not None and now - answered >= retention_s:
                del self._answered_at[key]
                self._entries.pop(key, None)
        return self.begin(key, request_fingerprint)

    def complete(self, key: str, response: StoredResponse) -> None:
        super().complete(key, response)
        with self._lock:
            self._answered_at[key] = time.monotonic()

    def clear(self) -> None:
        super().clear()
        with self._lock:
            self._answered_at.clear()


class FinanceSystem:
    def __init__(self) -> None:
        self.idempotency = ExpiringKeys()
        self.rules = FinanceRules()
        self._ledger: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def settle(self, key: str, request: SettlementRequest) -> StoredResponse:
        refusal = self.rules.refusal(request)
        if refusal is not None:
            return StoredResponse(
                refusal.status,
                {"error": refusal.error, "payment_id": request.payment_id, "status": "refused"},
            )
        extras = request.model_extra or {}
        settlement = {
            "reference": f"fin_{secrets.token_hex(12)}",
            "payment_id": request.payment_id,
            "amount": request.amount,
            "currency": request.currency,
            "kind": request.kind,
            "settlement_id": request.settlement_id,
            "status": "settled",
            "created_at": now_iso(),
        }
        with self._lock:
            self._ledger.append({"key": key, **settlement, "metadata": extras})
        return StoredResponse(201, {**settlement, "idempotency_key": key})

    def ledger(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._ledger)

    def find(self, entry_id: str) -> dict[str, Any] | None:
        """The entry whose ``reference`` or ``settlement_id`` is ``entry_id`` (the first)."""
        with self._lock:
            return next(
                (e for e in self._ledger if entry_id in (e["reference"], e["settlement_id"])),
                None,
            )

    def clear(self) -> None:
        with self._lock:
            self._ledger.clear()
        self.idempotency.clear()


def _finance(request: Request) -> FinanceSystem:
    system: FinanceSystem = request.app.state.sandbox.finance
    return system


def _error(status: int, error: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": error, "message": message, **extra}, status_code=status)


def _claim(finance: FinanceSystem, key: str, body: Any) -> Claim:
    # Fingerprinted as a single POST whatever route it came by: one key store for both APIs.
    return finance.idempotency.begin_within(
        key, fingerprint("POST", SETTLEMENTS_PATH, body), finance.rules.idempotency_retention_s
    )


@router.post("/v1/settlements")
async def create_settlement(request: Request) -> JSONResponse:
    finance = _finance(request)
    key = request.headers.get("idempotency-key", "").strip()
    if not key:
        return _error(400, "idempotency_key_required", "the Idempotency-Key header is required")
    try:
        body = await read_json(request)
        settlement = SettlementRequest.model_validate(body)
    except BadPayload as exc:
        return _error(400, "invalid_request", str(exc))
    except ValidationError as exc:
        return _error(400, "invalid_request", "invalid settlement", fields=field_errors(exc))

    claim = _claim(finance, key, body)
    if claim.state is ClaimState.REPLAY and claim.response is not None:
        return JSONResponse(
            claim.response.body,
            status_code=claim.response.status,
            headers={"Idempotent-Replayed": "true"},
        )
    if claim.state is ClaimState.MISMATCH:
        return _error(
            422, "idempotency_key_reused", "this Idempotency-Key was used with another request"
        )
    if claim.state is ClaimState.IN_FLIGHT:
        return _error(
            409, "idempotency_key_in_flight", "a request with this Idempotency-Key is in progress"
        )
    try:
        # The key is claimed: injected latency is spent here so a second try sees it in flight.
        await simulate_work(request)
        response = finance.settle(key, settlement)
    except BaseException:
        finance.idempotency.release(key)
        raise
    finance.idempotency.complete(key, response)
    return JSONResponse(response.body, status_code=response.status)


class BatchItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    idempotency_key: str = Field(min_length=1, max_length=512)
    body: dict[str, Any]


class Batch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[dict[str, Any]] = Field(min_length=1, max_length=BATCH_LIMIT)


def _item_result(key: str, status: int, body: Any, *, replayed: bool = False) -> dict[str, Any]:
    return {"idempotency_key": key, "status": status, "body": body, "replayed": replayed}


def _item_error(key: str, status: int, error: str, message: str, **extra: Any) -> dict[str, Any]:
    return _item_result(key, status, {"error": error, "message": message, **extra})


@router.post("/v1/settlements/batch")
async def create_settlements(request: Request) -> JSONResponse:
    """Many bookings in one request, one result per item (see the module docstring)."""
    finance = _finance(request)
    if not finance.rules.batch_api:
        return _error(404, "not_found", "this ledger has no batch API")
    try:
        batch = Batch.model_validate(await read_json(request))
    except BadPayload as exc:
        return _error(400, "invalid_request", str(exc))
    except ValidationError as exc:
        return _error(400, "invalid_request", "invalid batch", fields=field_errors(exc))
    results: list[dict[str, Any] | None] = [None] * len(batch.items)
    claimed: list[tuple[int, str, SettlementRequest]] = []
    for index, raw in enumerate(batch.items):
        key = str(raw.get("idempotency_key") or "").strip()
        try:
            item = BatchItem.model_validate(raw)
            settlement = SettlementRequest.model_validate(item.body)
        except ValidationError as exc:
            fields = field_errors(exc)
            results[index] = _item_error(key, 422, "invalid_request", "invalid item", fields=fields)
            continue
        key = item.idempotency_key
        claim = _claim(finance, key, item.body)
        if claim.state is ClaimState.REPLAY and claim.response is not None:
            stored = claim.response
            results[index] = _item_result(key, stored.status, stored.body, replayed=True)
        elif claim.state is ClaimState.MISMATCH:
            results[index] = _item_error(
                key, 409, "idempotency_key_reused", "this key was used with another request"
            )
        elif claim.state is ClaimState.IN_FLIGHT:
            results[index] = _item_error(
                key, 409, "idempotency_key_in_flight", "a request with this key is in progress"
            )
        else:
            claimed.append((index, key, settlement))
    try:
        await simulate_work(request)  # every claimed key is in flight while latency is spent
        for index, key, settlement in claimed:
            response = finance.settle(key, settlement)
            finance.idempotency.complete(key, response)
            results[index] = _item_result(key, response.status, response.body)
    except BaseException:
        for index, key, _ in claimed:
            if results[index] is None:
                finance.idempotency.release(key)
        raise
    return JSONResponse({"results": results})


@router.get("/v1/settlements/{entry_id}")
async def get_settlement(entry_id: str, request: Request) -> JSONResponse:
    """One ledger entry by finance's reference or the client's settlement id."""
    entry = _finance(request).find(entry_id)
    if entry is None:
        return _error(404, "not_found", f"no settlement {entry_id}")
    return JSONResponse(entry)
