"""Market-data ticks as canonical events.

A tick is ``{venue, symbol, seq, price, size, ts}``: ``seq`` is the venue's sequence number
per symbol (the id), ``price`` a decimal string (a float would round it), ``ts`` the
exchange time in nanoseconds since the epoch (an int or a decimal string).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from schemas.models import CanonicalEvent, LogBody
from streams.aggregation.logic.common import (
    SEVERITY_INFO,
    Context,
    as_json,
    canonical,
    fail,
    from_nanos,
    to_nanos,
)

NAME = "market"
VERSION = 1
FIELD_MAPPING: dict[str, str] = {
    "venue:symbol:seq": "id",
    "symbol": "subject, attributes.symbol",
    "ts": "time, body.time_unix_nano",
    "price (decimal string)": "attributes.price, body.body.price",
    "size": "attributes.size",
    "venue": "body.resource.market.venue",
}


def transform(tick: Any, context: Context) -> list[CanonicalEvent]:
    if not isinstance(tick, dict):
        raise fail(NAME, "a tick is a JSON object")
    venue, symbol, seq = tick.get("venue"), tick.get("symbol"), tick.get("seq")
    if not isinstance(symbol, str) or not symbol or not isinstance(venue, str) or not venue:
        raise fail(NAME, "venue and symbol are required")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise fail(NAME, f"seq {seq!r} is not a non-negative integer")
    try:
        price = Decimal(str(tick.get("price")))
        nanos = int(tick.get("ts"))  # type: ignore[arg-type]
    except (InvalidOperation, TypeError, ValueError) as exc:
        raise fail(NAME, f"price or ts does not read: {exc!r}") from exc
    if not price.is_finite() or price <= 0:
        raise fail(NAME, f"price {tick.get('price')!r} is not a positive number")
    size = tick.get("size", 0)
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise fail(NAME, f"size {size!r} is not a non-negative integer")
    if not 0 < nanos < 2**63:
        raise fail(NAME, f"ts {nanos} is out of range")
    body = LogBody(
        time_unix_nano=nanos,
        observed_time_unix_nano=to_nanos(context.ingested_at),
        severity_number=SEVERITY_INFO,
        body=as_json({"price": str(price), "size": size}),
        resource=as_json({"market.venue": venue, "service.name": "market-data"}),
        attributes=as_json({"symbol": symbol, "seq": seq}),
        event_name="market.tick",
    )
    return [
        canonical(
            context,
            id=f"{venue}:{symbol}:{seq}",
            type="market.tick",
            time=from_nanos(nanos),
            subject=symbol,
            attributes={"symbol": symbol, "price": str(price), "size": size, "seq": seq},
            tags=["market"],
            body=body,
        )
    ]
