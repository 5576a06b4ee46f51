"""The benchmark's input: N distinct ~1 KB Shopify orders, derived from the sample order.

Order ``n`` keeps every field the Shopify → ERP mapping reads (and nothing else, so it weighs
about 1 KB instead of the sample's 7.6 KB) and varies what a shop varies: the order id and
number, the customer, one to three line items with their prices and quantities, the totals
(computed exactly, so they add up), the payment status and the creation time. The same ``n``
always gives the same bytes; the record key is the order id, which the mapping writes as
``source_order_id``.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from bench.peers.work import SAMPLE_ORDER

FIRST_ID = 7_000_000_000
STATUSES = ("pending", "authorized", "paid", "partially_refunded", "refunded", "voided")
CATALOG = (
    ("IPOD2008GREEN", "IPod Nano - 8gb", "green"),
    ("IPOD2008RED", "IPod Nano - 8gb", "red"),
    ("IPOD2008BLACK", "IPod Nano - 8gb", "black"),
    ("SHUFFLE-BLUE", "IPod Shuffle", "blue"),
    ("CASE-LEATHER", "Leather case", None),
)
EPOCH = datetime(2026, 1, 10, 11, 0, tzinfo=UTC)
# Shopify writes the shop's local time; the mapping turns it into UTC and Berlin time.
SHOP_TIME = timezone(timedelta(hours=-5))
TAX_RATE = Decimal("0.06")
CENT = Decimal("0.01")


def _base() -> dict[str, Any]:
    order = json.loads(SAMPLE_ORDER.read_text())["order"]
    return {
        "address": order["shipping_address"],
        "customer": {k: order["customer"][k] for k in ("first_name", "last_name", "tags")},
    }


def order_key(n: int) -> bytes:
    return str(FIRST_ID + n).encode()


def order_bytes(n: int, base: dict[str, Any] | None = None) -> bytes:
    """Order ``n`` as compact JSON bytes (deterministic)."""
    base = base or _base()
    rng = random.Random(n)
    lines = []
    subtotal = Decimal(0)
    for index in range(rng.randint(1, 3)):
        sku, title, variant = CATALOG[rng.randrange(len(CATALOG))]
        price = Decimal(rng.randint(500, 49_999)) / 100
        quantity = rng.randint(1, 4)
        subtotal += price * quantity
        line: dict[str, Any] = {
            "id": 466_157_049 + n * 3 + index,
            "sku": sku,
            "title": title,
            "variant_title": variant,
            "quantity": quantity,
            "price": f"{price:.2f}",
            "properties": [{"name": "Custom Engraving", "value": "Happy Birthday"}]
            if index == 0 and n % 4 == 0
            else [],
        }
        lines.append(line)
    tax = (subtotal * TAX_RATE).quantize(CENT)
    shipping = Decimal(0) if n % 3 else Decimal("4.99")
    customer = {"id": 207_119_551 + n % 5000, "email": f"buyer{n % 5000}@example.com"}
    created = EPOCH + timedelta(seconds=n * 7)
    order = {
        "id": FIRST_ID + n,
        "order_number": 100_000 + n,
        "name": f"#{100_000 + n}",
        "email": f"Buyer{n % 5000}@Example.com ",
        "currency": "usd" if n % 2 else "USD",
        "created_at": created.astimezone(SHOP_TIME).isoformat(timespec="seconds"),
        "cancelled_at": None,
        "financial_status": STATUSES[n % len(STATUSES)],
        "buyer_accepts_marketing": n % 5 == 0,
        "test": False,
        "subtotal_price": f"{subtotal:.2f}",
        "total_tax": f"{tax:.2f}",
        "total_discounts": "0.00",
        "total_price": f"{subtotal + tax + shipping:.2f}",
        "tax_lines": [{"price": f"{tax:.2f}", "rate": 0.06, "title": "State Tax"}],
        "line_items": lines,
        "shipping_lines": [{"title": "Standard", "price": f"{shipping:.2f}", "code": "std"}],
        "shipping_address": base["address"],
        "customer": {**customer, **base["customer"]},
    }
    return json.dumps({"order": order}, separators=(",", ":")).encode()


def orders(first: int, stop: int) -> Iterator[tuple[bytes, bytes]]:
    """``(key, value)`` of orders ``first`` .. ``stop - 1``."""
    base = _base()
    for n in range(first, stop):
        yield order_key(n), order_bytes(n, base)
