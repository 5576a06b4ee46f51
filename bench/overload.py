"""Ingress under overload: offered rate against accepted, refused and p99, up to twice capacity.

``python -m bench overload [--seconds S] [--steps 0.5,1,1.5,2] [--concurrency C]``

A real ``synapseops api`` subprocess (the product's default bounds,
``SYNAPSEOPS_INGRESS_MAX_IN_FLIGHT`` / ``_MAX_PENDING_BYTES``) on the local stack's broker
takes generic events (``/webhooks/events/otel``, a 2 KiB JSON body, the dev source token):

1. **capacity**: ``--concurrency`` senders back to back for ``--seconds`` — accepted events
   per second is the capacity on this machine;
2. **the curve**: for each step, events offered open-loop at step × capacity (sent at their
   scheduled times whatever the answers, as webhooks arrive) for ``--seconds``: accepted/s,
   refused/s (503 with ``Retry-After``; any other answer or a transport error is counted
   apart) — per second from the first send to the last answer —, p50/p99 of the answers, and
   the API's peak resident memory.

Prints figures; asserts nothing about time. Every accepted event is durable in Kafka by
construction (2xx only after ``acks=all``); ``tests/integration/ops/test_ingress_overload.py``
checks that by reading them back.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from tempfile import TemporaryDirectory
from uuid import uuid4

from synapseops.settings import Settings
from synapseops.settings.base import DEFAULT_DEV_SOURCE_TOKEN
from tests.integration.ops.ops_stack import ServedProcess
from tests.integration.worker_process import free_port

BODY = json.dumps({"type": "metric", "points": [{"v": n, "t": "x" * 12} for n in range(60)]})


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


@dataclass
class Step:
    """What one phase offered and got back."""

    offered: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    seconds: list[float] = field(default_factory=list)
    missing_retry_after: int = 0
    peak_rss: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    began: float = 0.0
    last_answer: float = 0.0

    @property
    def span_s(self) -> float:
        """From the first send to the last answer: rates are per second of that."""
        return max(self.last_answer - self.began, 1e-9)

    def record(self, answer: Answer | None, took: float) -> None:
        if answer is None:
            self.statuses["error"] += 1
            return
        self.statuses[str(answer.status_code)] += 1
        self.seconds.append(took)
        if answer.status_code in (429, 503) and "retry-after" not in answer.headers:
            self.missing_retry_after += 1


@dataclass(frozen=True)
class Answer:
    status_code: int
    headers: dict[str, str]


class Connections:
    """Keep-alive HTTP/1.1 connections to the API, one request at a time on each, opened as
    needed. Hand-written on asyncio streams because the client shares the machine's cores
    with the API: httpx spends about a millisecond of CPU a request, which made the client,
    not the API, the bottleneck of the first runs."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> Answer:
        reader, writer = (
            self.idle.pop() if self.idle else await asyncio.open_connection(self.host, self.port)
        )
        head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Length: {len(body)}\r\n"
            f"{head}\r\n".encode()
            + body
        )
        try:
            status_line = await reader.readline()
            if not status_line:
                raise ConnectionError("closed by the API")
            answer_headers: dict[str, str] = {}
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                answer_headers[name.strip().lower()] = value.strip()
            await reader.readexactly(int(answer_headers.get("content-length", "0")))
        except BaseException:
            writer.close()
            raise
        if answer_headers.get("connection", "").lower() == "close":
            writer.close()
        else:
            self.idle.append((reader, writer))
        return Answer(int(status_line.split()[1]), answer_headers)

    def close(self) -> None:
        for _, writer in self.idle:
            writer.close()


async def _send(client: Connections, step: Step) -> None:
    event_id = f"bench-{uuid4().hex}"
    body = BODY.replace('"metric"', f'"metric", "id": "{event_id}"', 1).encode()
    started = time.perf_counter()
    try:
        answer: Answer | None = await client.post(
            "/webhooks/events/otel",
            body,
            {
                "Content-Type": "application/json",
                "Idempotency-Key": event_id,
                "Authorization": f"Bearer {DEFAULT_DEV_SOURCE_TOKEN}",
            },
        )
    except (OSError, asyncio.IncompleteReadError) as exc:
        step.errors[type(exc).__name__] += 1
        answer = None
    step.record(answer, time.perf_counter() - started)
    step.last_answer = time.monotonic()


async def _watch_rss(pid: int, step: Step, stop: asyncio.Event) -> None:
    while not stop.is_set():
        step.peak_rss = max(step.peak_rss, _rss(pid))
        await asyncio.sleep(0.25)


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


async def closed_loop(host: str, port: int, pid: int, seconds: float, senders: int) -> Step:
    step, stop, client = Step(began=time.monotonic()), asyncio.Event(), Connections(host, port)
    deadline = step.began + seconds

    async def sender() -> None:
        while time.monotonic() < deadline:
            step.offered += 1
            await _send(client, step)

    watcher = asyncio.create_task(_watch_rss(pid, step, stop))
    await asyncio.gather(*(sender() for _ in range(senders)))
    stop.set()
    await watcher
    client.close()
    return step


async def open_loop(host: str, port: int, pid: int, seconds: float, rate: float) -> Step:
    step, stop, client = Step(began=time.monotonic()), asyncio.Event(), Connections(host, port)
    watcher = asyncio.create_task(_watch_rss(pid, step, stop))
    tasks = []
    for index in range(int(rate * seconds)):
        delay = step.began + index / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        step.offered += 1
        tasks.append(asyncio.create_task(_send(client, step)))
    await asyncio.gather(*tasks)
    stop.set()
    await watcher
    client.close()
    return step


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else float("nan")


def _row(label: str, step: Step, seconds: float) -> str:
    accepted = step.statuses["202"]
    refused = step.statuses["503"] + step.statuses["429"]
    other = sum(step.statuses.values()) - accepted - refused
    return (
        f"{label:>14} {step.offered / seconds:9.0f} {accepted / step.span_s:9.0f} "
        f"{refused / step.span_s:9.0f} {other:6d} {_quantile(step.seconds, 0.5) * 1000:8.0f} "
        f"{_quantile(step.seconds, 0.99) * 1000:8.0f} {step.peak_rss / 2**20:8.0f}"
        + (f"  ({step.missing_retry_after} refusals without Retry-After)"
           if step.missing_retry_after else "")
        + (f"  (transport errors: {dict(step.errors)})" if step.errors else "")
    )  # fmt: skip


def run(argv: Sequence[str] = ()) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench overload")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--steps", default="0.5,1,1.5,2")
    parser.add_argument("--concurrency", type=int, default=32)
    options = parser.parse_args(list(argv))
    settings = Settings()
    port = free_port()
    with TemporaryDirectory() as data_dir:
        env = {
            **os.environ,
            "SYNAPSEOPS_ENV": "dev",
            "SYNAPSEOPS_LOG_LEVEL": "WARNING",
            "SYNAPSEOPS_DATA_DIR": data_dir,
            "SYNAPSEOPS_DATABASE_URL": settings.database_url,
            "SYNAPSEOPS_API_PORT": str(port),
        }
        api = ServedProcess("api", port, env, Path(data_dir) / "api.log", "/health")
        api.start()
        try:
            api.wait_healthy()
            assert api.process is not None
            pid, host = api.process.pid, "127.0.0.1"
            asyncio.run(closed_loop(host, port, pid, 2.0, 8))  # warm up
            capacity_step = asyncio.run(
                closed_loop(host, port, pid, options.seconds, options.concurrency)
            )
            capacity = capacity_step.statuses["202"] / capacity_step.span_s
            ingress = settings.ingress
            _say(
                f"capacity: {capacity:.0f} accepted events/s with {options.concurrency} senders "
                f"back to back (p99 {_quantile(capacity_step.seconds, 0.99) * 1000:.0f} ms); "
                f"bounds: {ingress.max_in_flight} requests in flight, "
                f"{ingress.max_pending_bytes // 2**20} MiB pending"
            )
            _say(
                f"{'offered':>14} {'sent/s':>9} {'202/s':>9} {'503/s':>9} {'other':>6} "
                f"{'p50 ms':>8} {'p99 ms':>8} {'RSS MiB':>8}"
            )
            for factor in (float(f) for f in options.steps.split(",") if f.strip()):
                step = asyncio.run(open_loop(host, port, pid, options.seconds, factor * capacity))
                _say(_row(f"{factor:g}x = {factor * capacity:.0f}/s", step, options.seconds))
        finally:
            api.stop()
