"""``python -m bench ingress``: webhook ingress against a bare FastAPI endpoint, same machine.

Two servers, one at a time, each its own uvicorn process configured alike (one worker, no
access log): the bare endpoint reads the body and answers 200; the product's ``synapseops
api`` takes signed Stripe ``payment_intent.succeeded`` events on ``POST /webhooks/stripe``
and answers 200 only once the event is on every in-sync replica (the whole ingress: overload
bound, body limit, signature over the raw bytes, envelope, headers, trace, produce with
``acks=all``). The same client (:mod:`bench.ingress_load`: raw HTTP/1.1 keep-alive, requests
built before the clock starts) drives both alike: ``--concurrency`` connections back to back
for ``--seconds`` after a one-second warm-up, then half the rate each reached, paced (open
loop), for the p99 there. Figures: requests/s, the server's CPU µs per request (its process
tree, ``/proc``), the client's, p50/p99.

The client costs a few tens of µs per request, a small fraction of the bare endpoint's: the
bare row measures the server, not the client (httpx, used until session 6, cost about as
much as the bare endpoint and made the req/s ratio flatter the product). The Kafka broker
the product waits on shares the cores too: that is the machine the goal speaks of.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

from bench import goals
from bench.ingress_load import Load, closed_loop, cycle, paced, request_bytes
from bench.peers.harness import stop_process
from bench.peers.measure import ProcessTree
from sandbox.harness import free_port
from synapseops.settings import PROJECT_ROOT, Settings
from synapseops.signatures import sign_stripe
from tests.integration.payments.factory import PaymentFactory

SECRET = "whsec_bench_ingress_only"
PATH = "/webhooks/stripe"
CLI = PROJECT_ROOT / ".venv" / "bin" / "synapseops"


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


def _requests(port: int, count: int = 3000) -> list[bytes]:
    """Made before any request (the client's CPU is the machine's): distinct signed events,
    sent in turn and then again — a duplicate is answered 200 too (de-duplication is
    downstream). Signed once each: Stripe's tolerance (5 min) covers the run."""
    made = []
    for _ in range(count):
        body = PaymentFactory(amount=4200).succeeded().body
        headers = {
            "Stripe-Signature": sign_stripe(body, SECRET),
            "Content-Type": "application/json",
        }
        made.append(request_bytes(f"127.0.0.1:{port}", PATH, body, headers))
    return made


def _line(label: str, load: Load, base: Load | None) -> str:
    ratio = f"{load.rate / base.rate:5.2f}x" if base else "     -"
    return (
        f"{label:<46} {load.rate:>7,.0f} {ratio:>6} {load.cpu_us:>7,.0f} {load.client_us:>7,.0f} "
        f"{load.quantile(0.5) * 1000:>7.1f} {load.quantile(0.99) * 1000:>7.1f} {load.failures:>5}"
    )


@contextmanager
def _profiled(pid: int, name: str) -> Iterator[None]:
    """With ``SYNAPSEOPS_BENCH_PYSPY=DIR``: py-spy samples the server (from outside) during
    the closed loop, collapsed stacks to ``DIR/ingress-<name>.txt``."""
    folder = os.environ.get("SYNAPSEOPS_BENCH_PYSPY")
    if not folder:
        yield
        return
    spy = Path(sys.executable).with_name("py-spy")
    if not spy.exists():
        raise SystemExit(
            f"SYNAPSEOPS_BENCH_PYSPY needs py-spy: {sys.executable} -m pip install py-spy"
        )
    Path(folder).mkdir(parents=True, exist_ok=True)
    argv = [str(spy), "record", "--pid", str(pid), "--format", "raw", "--threads", "--rate", "250"]
    argv += ["--nonblocking", "--output", f"{folder}/ingress-{name}.txt"]
    spy_process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        spy_process.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        spy_process.wait(timeout=30)


def _measure(
    name: str, argv: Sequence[str], settings: Settings, options: argparse.Namespace
) -> tuple[Load, Load]:
    """One server: its closed-loop load, then the same at half that rate, paced."""
    port = free_port()
    env = {
        **os.environ,
        "SYNAPSEOPS_API_PORT": str(port),
        "SYNAPSEOPS_STRIPE_WEBHOOK_SECRET": SECRET,
        "SYNAPSEOPS_LOG_LEVEL": "WARNING",
        "SYNAPSEOPS_KAFKA_BOOTSTRAP": settings.kafka.bootstrap,
    }
    requests = cycle(_requests(port))
    address = ("127.0.0.1", port)
    with _server(argv, env, port) as process:
        tree = ProcessTree(process.pid)
        with _profiled(process.pid, name):
            full = asyncio.run(
                closed_loop(
                    address, requests, concurrency=options.concurrency, seconds=options.seconds,
                    server_cpu=tree.sample,
                )
            )  # fmt: skip
        half = asyncio.run(
            paced(address, requests, rate=full.rate / 2, seconds=options.seconds,
                  server_cpu=tree.sample)
        )  # fmt: skip
    return full, half


def run(argv: Sequence[str] = ()) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench ingress")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0)
    options, _ = parser.parse_known_args(list(argv))
    settings = Settings()
    load_before = os.getloadavg()[0]
    bare, bare_half = _measure(
        "bare", [sys.executable, "-m", "bench.ingress_bare"], settings, options
    )
    product, half = _measure("synapseops", [str(CLI), "api"], settings, options)
    _say(
        f"{options.concurrency} connections in flight, {options.seconds:.0f} s each, "
        f"{os.cpu_count()} cores (load average {load_before:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after)"
    )
    header = f"{'server':<46} {'req/s':>7} {'x':>6} {'srv µs':>7} {'cli µs':>7}"
    _say(f"{header} {'p50 ms':>7} {'p99 ms':>7} {'fail':>5}")
    _say(_line("bare FastAPI endpoint (reads body, 200)", bare, None))
    _say(_line(f"  the same at half its rate ({bare_half.rate:,.0f}/s, paced)", bare_half, bare))
    _say(_line("SynapseOps POST /webhooks/stripe (acks=all)", product, bare))
    _say(_line(f"  the same at half its rate ({half.rate:,.0f}/s, paced)", half, bare))
    by_cpu = bare.cpu_us / product.cpu_us if product.cpu_us else float("nan")
    _say(
        f"  srv µs: the server's CPU per request (its process tree, /proc); cli µs: this "
        f"client's. By server CPU per request the product is {by_cpu:.0%} of the bare endpoint."
    )
    for load in (bare, product, half):
        if load.failures:
            _say(f"  answers {load.statuses}")
    share = product.rate / bare.rate
    goals.measured(
        "ingress", f"{share:.0%} ({product.rate:,.0f} vs {bare.rate:,.0f}/s)", share >= 0.4
    )
    p99 = half.quantile(0.99) * 1000
    # The bare endpoint's own p99 at half its rate is the machine's floor at this load.
    floor = bare_half.quantile(0.99) * 1000
    goals.measured(
        "ingress-p99", f"{p99:.0f} ms at {half.rate:,.0f}/s (bare: {floor:.0f} ms)", p99 <= 50
    )
