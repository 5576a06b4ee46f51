"""``python -m bench ingress``: webhook ingress against a bare FastAPI endpoint, same machine.

Two servers, one at a time, each its own uvicorn process configured alike (one worker, no
access log): the bare endpoint reads the body and answers 200; the product's ``synapseops
api`` takes signed Stripe ``payment_intent.succeeded`` events on ``POST /webhooks/stripe``
and answers 200 only once the event is on every in-sync replica (the whole ingress: body
limit, signature over the raw bytes, envelope, headers, trace, produce with ``acks=all``).
The same client drives both: ``--concurrency`` requests in flight for ``--seconds`` after a
one-second warm-up; then the product at half the rate it reached, paced (open loop), for its
p99 there. Figures: requests/s, the server's CPU µs per request (``/proc``), p50/p99.

The client (httpx, in this process) shares the two cores with the server, and costs about as
much CPU per request as the bare endpoint does: the bare row is client-bound, so the ratio
flatters the product a little; the CPU per request column does not depend on it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import httpx

from bench import goals
from bench.peers.harness import stop_process
from bench.peers.measure import ProcessTree
from sandbox.harness import free_port
from synapseops.settings import PROJECT_ROOT, Settings
from synapseops.signatures import sign_stripe
from tests.integration.payments.factory import PaymentFactory

SECRET = "whsec_bench_ingress_only"
PATH = "/webhooks/stripe"
CLI = PROJECT_ROOT / ".venv" / "bin" / "synapseops"


@dataclass(frozen=True)
class Load:
    requests: int
    seconds: float
    cpu_us: float  # server CPU per request
    latencies: list[float]  # seconds, sorted
    failures: int

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def quantile(self, q: float) -> float:
        values = self.latencies
        return values[min(len(values) - 1, int(len(values) * q))] if values else float("nan")


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


@contextmanager
def _server(
    argv: Sequence[str], env: dict[str, str], port: int
) -> Iterator[subprocess.Popen[bytes]]:
    log = Settings().data_dir / "logs" / "bench-ingress.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        process = subprocess.Popen(list(argv), env=env, stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{argv[0]} exited with {process.returncode}; see {log}")
            try:
                httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        yield process
    finally:
        stop_process(process)


_SIGNED: dict[bytes, dict[str, str]] = {}


def _request(body: bytes) -> tuple[bytes, dict[str, str]]:
    headers = _SIGNED.get(body)
    if headers is None:  # signed once per body: Stripe's tolerance (5 min) covers the run
        headers = {
            "Stripe-Signature": sign_stripe(body, SECRET),
            "Content-Type": "application/json",
        }
        _SIGNED[body] = headers
    return body, headers


async def _closed_loop(url: str, bodies: Iterator[bytes], concurrency: int, seconds: float,
                       tree: ProcessTree) -> Load:  # fmt: skip
    latencies: list[float] = []
    failures = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:

        async def one() -> tuple[float, bool]:
            body, headers = _request(next(bodies))
            started = time.monotonic()
            answer = await client.post(url, content=body, headers=headers)
            return time.monotonic() - started, answer.status_code == 200

        async def loop(until: float, counted: bool) -> None:
            nonlocal failures
            while time.monotonic() < until:
                latency, ok = await one()
                if counted:
                    latencies.append(latency)
                    failures += not ok

        warm = time.monotonic() + 1.0
        await asyncio.gather(*(loop(warm, False) for _ in range(concurrency)))
        cpu, started = tree.sample(), time.monotonic()
        await asyncio.gather(*(loop(started + seconds, True) for _ in range(concurrency)))
        span, cpu = time.monotonic() - started, tree.sample() - cpu
    done = len(latencies)
    return Load(done, span, cpu / max(done, 1) * 1e6, sorted(latencies), failures)


async def _paced(url: str, bodies: Iterator[bytes], rate: float, seconds: float,
                 tree: ProcessTree) -> Load:  # fmt: skip
    latencies: list[float] = []
    failures = 0
    async with httpx.AsyncClient(timeout=30) as client:

        async def one(body: bytes) -> None:
            nonlocal failures
            payload, headers = _request(body)
            started = time.monotonic()
            answer = await client.post(url, content=payload, headers=headers)
            latencies.append(time.monotonic() - started)
            failures += answer.status_code != 200

        count = max(1, int(rate * seconds))
        cpu, started = tree.sample(), time.monotonic()
        tasks = []
        for n in range(count):
            await asyncio.sleep(max(0.0, started + n / rate - time.monotonic()))
            tasks.append(asyncio.ensure_future(one(next(bodies))))
        await asyncio.gather(*tasks)
        span, cpu = time.monotonic() - started, tree.sample() - cpu
    return Load(count, span, cpu / count * 1e6, sorted(latencies), failures)


def _bodies(count: int = 3000) -> Iterator[bytes]:
    """Made before any request (the client's CPU is the machine's): distinct events, then the
    same ones again — a duplicate is answered 200 too (de-duplication is downstream)."""
    made = [PaymentFactory(amount=4200).succeeded().body for _ in range(count)]
    while True:
        yield from made


def _line(label: str, load: Load, base: Load | None) -> str:
    ratio = f"{load.rate / base.rate:5.2f}x" if base else "     -"
    return (
        f"{label:<44} {load.rate:>8,.0f} {ratio:>6} {load.cpu_us:>8,.0f} "
        f"{load.quantile(0.5) * 1000:>7.1f} {load.quantile(0.99) * 1000:>7.1f} {load.failures:>5}"
    )


def run(argv: Sequence[str] = ()) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench ingress")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0)
    options, _ = parser.parse_known_args(list(argv))
    settings = Settings()
    bodies = _bodies()
    loads: dict[str, Load] = {}
    servers = {
        "bare": [sys.executable, "-m", "bench.ingress_bare"],
        "synapseops": [str(CLI), "api"],
    }
    for name, argv_ in servers.items():
        port = free_port()
        env = {
            **os.environ,
            "SYNAPSEOPS_API_PORT": str(port),
            "SYNAPSEOPS_STRIPE_WEBHOOK_SECRET": SECRET,
            "SYNAPSEOPS_LOG_LEVEL": "WARNING",
            "SYNAPSEOPS_KAFKA_BOOTSTRAP": settings.kafka.bootstrap,
        }
        url = f"http://127.0.0.1:{port}{PATH}"
        with _server(argv_, env, port) as process:
            tree = ProcessTree(process.pid)
            loads[name] = asyncio.run(
                _closed_loop(url, bodies, options.concurrency, options.seconds, tree)
            )
            if name == "synapseops":
                rate = loads[name].rate / 2
                loads["half"] = asyncio.run(_paced(url, bodies, rate, options.seconds, tree))
    bare, product, half = loads["bare"], loads["synapseops"], loads["half"]
    _say(
        f"{options.concurrency} requests in flight, {options.seconds:.0f} s each, "
        f"{os.cpu_count()} cores (load average {os.getloadavg()[0]:.1f})"
    )
    header = f"{'server':<44} {'req/s':>8} {'×':>6} {'CPU µs':>8} {'p50 ms':>7} {'p99 ms':>7}"
    _say(f"{header} {'fail':>5}")
    _say(_line("bare FastAPI endpoint (reads body, 200)", bare, None))
    _say(_line("SynapseOps POST /webhooks/stripe (acks=all)", product, bare))
    _say(_line(f"  the same at half its rate ({half.rate:,.0f}/s, paced)", half, bare))
    share = product.rate / bare.rate
    goals.measured(
        "ingress", f"{share:.0%} ({product.rate:,.0f} vs {bare.rate:,.0f}/s)", share >= 0.4
    )
    p99 = half.quantile(0.99) * 1000
    goals.measured("ingress-p99", f"{p99:.0f} ms at {half.rate:,.0f}/s", p99 <= 50)
