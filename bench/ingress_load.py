"""The load generator of ``bench ingress``: raw HTTP/1.1 keep-alive over asyncio streams.

The client shares the machine's cores with the server it measures, so it must cost far less
per request than the cheapest server does, or the bare endpoint's row measures the client
(httpx cost about as much CPU per request as the bare FastAPI endpoint; this costs a few
tens of µs). Every request's bytes (request line, headers, body) are built before the clock
starts; an answer is read as its status line, its ``Content-Length`` and that many bytes —
both servers answer that way (no chunking), and a server that closes the connection gets a
new one. The client's own CPU per request is measured (:func:`time.process_time`) and
printed beside the server's, so a reader can see it was not the bound.

Two ways to drive a server:

- :func:`closed_loop`: ``concurrency`` connections, each sending its next request as soon
  as the last one is answered (the rate the server reaches at that concurrency);
- :func:`paced`: an open loop at a fixed rate (requests leave on schedule whether or not
  earlier ones were answered, on an idle connection or a new one). Latency is counted from
  the scheduled moment, so a stalled client or server cannot hide its delay (coordinated
  omission).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

# Server CPU seconds of the measured process tree so far (bench.peers.measure.ProcessTree).
CpuClock = Callable[[], float]


@dataclass(frozen=True)
class Load:
    """One measured load: ``cpu_us`` the server's CPU per request, ``client_us`` ours."""

    requests: int
    seconds: float
    cpu_us: float
    client_us: float
    latencies: list[float]  # seconds, sorted
    failures: int
    statuses: dict[int, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def quantile(self, q: float) -> float:
        values = self.latencies
        return values[min(len(values) - 1, int(len(values) * q))] if values else float("nan")


def request_bytes(host: str, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    """One ``POST`` as it goes on the wire (keep-alive, explicit length)."""
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class Connection:
    """One keep-alive connection; :meth:`exchange` sends a request and reads its answer."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def exchange(self, request: bytes) -> int:
        """The answer's status code (the body is read and dropped)."""
        reused = self.writer is not None
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(request)
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionResetError) as exc:
            # uvicorn closes a connection idle past its keep-alive timeout (5 s): one the
            # paced loop left idle that long is closed without an answer — nothing was
            # processed, so the request goes again on a new connection.
            nothing = not isinstance(exc, asyncio.IncompleteReadError) or not exc.partial
            if not (reused and nothing):
                raise
            self.close()
            return await self.exchange(request)
        status, length, closing = _parse_head(head)
        if length:
            await self.reader.readexactly(length)
        if closing:
            self.close()
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def _parse_head(head: bytes) -> tuple[int, int, bool]:
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length, closing = 0, False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection" and value.strip().lower() == b"close":
            closing = True
    return status, length, closing


class _Tally:
    """Answers counted between :meth:`start` and :meth:`load`, with the three clocks."""

    def __init__(self, server_cpu: CpuClock, ok: int) -> None:
        self.server_cpu, self.ok = server_cpu, ok
        self.latencies: list[float] = []
        self.statuses: dict[int, int] = {}
        self.started = self.cpu = self.client = 0.0

    def start(self) -> float:
        self.cpu, self.client = self.server_cpu(), time.process_time()
        self.started = time.monotonic()
        return self.started

    def add(self, latency: float, status: int) -> None:
        self.latencies.append(latency)
        self.statuses[status] = self.statuses.get(status, 0) + 1

    def load(self) -> Load:
        span = time.monotonic() - self.started
        cpu, client = self.server_cpu() - self.cpu, time.process_time() - self.client
        done = len(self.latencies)
        return Load(
            done,
            span,
            cpu / max(done, 1) * 1e6,
            client / max(done, 1) * 1e6,
            sorted(self.latencies),
            done - self.statuses.get(self.ok, 0),
            dict(self.statuses),
        )


async def closed_loop(
    address: tuple[str, int],
    requests: Iterator[bytes],
    *,
    concurrency: int,
    seconds: float,
    server_cpu: CpuClock,
    warm_s: float = 1.0,
    ok: int = 200,
) -> Load:
    """``concurrency`` connections back to back for ``seconds`` after ``warm_s`` of warm-up."""
    connections = [Connection(*address) for _ in range(concurrency)]
    tally = _Tally(server_cpu, ok)

    async def drive(connection: Connection, until: float, counted: bool) -> None:
        while (started := time.monotonic()) < until:
            status = await connection.exchange(next(requests))
            if counted:
                tally.add(time.monotonic() - started, status)

    try:
        warm = time.monotonic() + warm_s
        await asyncio.gather(*(drive(c, warm, False) for c in connections))
        started = tally.start()
        await asyncio.gather(*(drive(c, started + seconds, True) for c in connections))
        return tally.load()
    finally:
        for connection in connections:
            connection.close()


async def paced(
    address: tuple[str, int],
    requests: Iterator[bytes],
    *,
    rate: float,
    seconds: float,
    server_cpu: CpuClock,
    ok: int = 200,
) -> Load:
    """``rate`` requests/s on schedule for ``seconds``; latency from each scheduled moment."""
    idle: list[Connection] = []
    opened: list[Connection] = []
    tally = _Tally(server_cpu, ok)

    async def one(request: bytes, due: float) -> None:
        if idle:
            connection = idle.pop()
        else:
            connection = Connection(*address)
            opened.append(connection)
        status = await connection.exchange(request)
        tally.add(time.monotonic() - due, status)
        idle.append(connection)

    count = max(1, int(rate * seconds))
    started = tally.start()
    tasks: list[asyncio.Task[None]] = []
    try:
        for n in range(count):
            due = started + n / rate
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            tasks.append(asyncio.create_task(one(next(requests), due)))
        await asyncio.gather(*tasks)
        return tally.load()
    finally:
        for connection in opened:
            connection.close()


def cycle(requests: Sequence[bytes]) -> Iterator[bytes]:
    while True:
        yield from requests
