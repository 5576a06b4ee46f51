"""A market-data feed for the demo and the tests: ticks on ``market.ticks``.

``SYNAPSEOPS_AGGREGATION_TICKS_PER_S`` ticks a second (0: off), round-robin over the symbols,
each a random walk of its price (a decimal string: a float would round it). ``seq`` is the
microsecond clock, kept strictly increasing per symbol, so a restarted feed never reuses an
id (``venue:symbol:seq``) the pipeline would skip as a duplicate. A supervised unit.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from decimal import Decimal

from synapseops import headers as h
from synapseops.ids import new_traceparent
from synapseops.kafka import AsyncProducer, Outgoing
from synapseops.settings import AggregationSettings
from topics.registry import MARKET_TICK, MARKET_TICKS

CENT = Decimal("0.01")


class TickFeed:
    def __init__(self, settings: AggregationSettings, producer: AsyncProducer) -> None:
        self.settings = settings
        self.producer = producer
        self._stopping = asyncio.Event()
        self._prices = {symbol: Decimal(100) for symbol in settings.symbols}
        self._seq = dict.fromkeys(settings.symbols, 0)
        self._random = random.Random()  # noqa: S311 - simulated prices, not secrets
        self.sent = 0

    def tick(self, symbol: str) -> Outgoing:
        price = self._prices[symbol] * Decimal(1 + self._random.gauss(0, 0.001))
        price = max(price.quantize(CENT), CENT)
        self._prices[symbol] = price
        now_ns = time.time_ns()
        seq = self._seq[symbol] = max(self._seq[symbol] + 1, now_ns // 1000)
        tick = {
            "venue": self.settings.ticks_venue,
            "symbol": symbol,
            "seq": seq,
            "price": str(price),
            "size": self._random.randint(1, 50) * 100,
            "ts": now_ns,
        }
        headers = h.with_kind(
            [
                (h.SOURCE, b"market"),
                (h.RECEIVED_AT, h.received_at_now().encode()),
                (h.TRACEPARENT, new_traceparent().encode()),
            ],
            MARKET_TICK,
        )
        value = json.dumps(tick, separators=(",", ":")).encode()
        return Outgoing(MARKET_TICKS.name, value, key=symbol.encode(), headers=headers)

    async def run(self) -> None:
        rate = self.settings.ticks_per_s
        symbols = self.settings.symbols
        if rate <= 0 or not symbols:
            await self._stopping.wait()
            return
        # Up to ten sends a second, each a burst of what is due: one produce round per burst.
        per_burst = max(1, round(rate / 10))
        pause = per_burst / rate
        while not self._stopping.is_set():
            burst = [self.tick(symbols[(self.sent + n) % len(symbols)]) for n in range(per_burst)]
            await self.producer.send_many(burst)
            self.sent += len(burst)
            try:
                await asyncio.wait_for(self._stopping.wait(), timeout=pause)
            except TimeoutError:
                pass

    async def stop(self) -> None:
        self._stopping.set()
