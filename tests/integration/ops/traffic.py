"""Traffic for the ops tests: the demo's own senders (:class:`sandbox.traffic.DemoClient`)
aimed at the ops stack — signed Stripe payments, generic events, Shopify orders through the
demo's integration flow — plus the waits that say when the worker has done its part."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from sandbox.traffic import DemoClient, load_samples, order_numbers
from synapseops.ids import new_id
from tests.integration.ops.ops_stack import OpsStack

WAIT_S = 90.0


class StackTraffic:
    def __init__(self, stack: OpsStack) -> None:
        self.stack = stack
        # Idle connections dropped after 1 s, well before uvicorn closes them (5 s): a request
        # sent on a connection the server is closing meets "Server disconnected without
        # sending a response" (it failed a fault set-up once, on a host under heavy steal).
        self.http = httpx.Client(timeout=40.0, limits=httpx.Limits(keepalive_expiry=1.0))
        self.demo = DemoClient(stack.settings, self.http)
        self.samples = load_samples()
        self._numbers = order_numbers()

    def close(self) -> None:
        self.http.close()

    def payments(self, count: int, amount: int = 1999, *, api_url: str | None = None) -> list[str]:
        """``count`` new payments, each one signed ``payment_intent.succeeded``; their ids."""
        sent = []
        for _ in range(count):
            payment, body = self.demo.stripe_event(amount)
            answer = self._stripe(body, api_url)
            assert answer.status_code == 200, answer.text
            sent.append(payment)
        return sent

    def _stripe(self, body: bytes, api_url: str | None) -> httpx.Response:
        if api_url is None:
            return self.demo.send_stripe(body)
        cut_off = DemoClient(
            self.stack.settings.model_copy(
                update={"api": self.stack.settings.api.model_copy(update={"port": _port(api_url)})}
            ),
            self.http,
        )
        return cut_off.send_stripe(body)

    def stripe_answers(self, api_url: str, count: int) -> list[int]:
        """The statuses ``api_url`` answers ``count`` signed payments with (sent together)."""
        bodies = [self.demo.stripe_event(1999)[1] for _ in range(count)]
        with ThreadPoolExecutor(max_workers=count) as pool:
            return [r.status_code for r in pool.map(lambda b: self._stripe(b, api_url), bodies)]

    def generic(self, count: int, threads: int = 8) -> list[str]:
        """``count`` generic events (the samples in turn), 202 each; their ids."""
        chosen = [(new_id("ops"), self.samples[i % len(self.samples)]) for i in range(count)]

        def send(pair: tuple[str, Any]) -> int:
            return self.demo.send_generic(*pair).status_code

        with ThreadPoolExecutor(max_workers=threads) as pool:
            statuses = list(pool.map(send, chosen))
        assert set(statuses) == {202}, statuses[:10]
        return [event_id for event_id, _ in chosen]

    def orders(self, count: int) -> list[int]:
        """``count`` Shopify orders through the demo's Shopify → ERP flow (made once)."""
        self.demo.ensure_flow()
        numbers = [next(self._numbers) for _ in range(count)]
        for number in numbers:
            answer = self.demo.send_shopify(self.demo.shopify_order(number), new_id("wh"))
            assert answer.status_code == 202, answer.text
        return numbers

    # ---- waits -------------------------------------------------------------------------------

    def wait_settled(self, payments: list[str], state: str = "settled") -> None:
        wanted = set(payments)
        wait_until(
            lambda: {row["payment_id"] for row in self.demo.settlements(wanted)
                     if row["state"] == state} == wanted,
            f"{len(wanted)} payments {state}",
        )  # fmt: skip

    def wait_stored(self, event_ids: list[str]) -> None:
        wanted = set(event_ids)
        wait_until(lambda: len(self.demo.stored_events(wanted)) == len(wanted), "events stored")

    def wait_delivered(self, numbers: list[int]) -> None:
        wait_until(lambda: len(self.demo.erp_orders(set(numbers))) == len(numbers), "ERP orders")

    def set_fault(self, target: str, **fault: Any) -> None:
        answer = self.http.post(
            f"{self.stack.sandbox_url}/_sandbox/faults", json={"target": target, **fault}
        )
        answer.raise_for_status()

    def wait_fault_spent(self, target: str) -> None:
        """Until every failure a ``count`` fault of ``target`` holds has been answered (read
        from the control plane: a read of the target itself would take one)."""

        def spent() -> bool:
            faults = self.http.get(f"{self.stack.sandbox_url}/_sandbox/faults").json()["faults"]
            return all(f["remaining"] == 0 for f in faults if f["target"] == target)

        wait_until(spent, f"the {target} fault spent")

    def clear_faults(self) -> None:
        self.http.delete(f"{self.stack.sandbox_url}/_sandbox/faults").raise_for_status()

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        answer = self.http.request(
            method, f"{self.stack.api_url}{path}", headers=self.demo.auth, **kwargs
        )
        assert answer.status_code < 300, (path, answer.status_code, answer.text)
        return answer.json()


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/", 1)[0])


def wait_until(check: Callable[[], bool], what: str, within_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    pytest.fail(f"not within {within_s:g}s: {what}")
