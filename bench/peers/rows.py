"""The rows of the table: each one starts a peer process that reads the input topic with its
own group and writes its own output topic.

A row is a label and a ``start(context) -> Popen`` function; the harness measures the process
it gets back and verifies the output topic. Adding a peer is one such function. A row whose
peer does not exist raises :class:`NotBuilt`, and the table says so instead of a figure.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.peers.quix_venv import ensure_quix_venv
from bench.peers.work import ROOT


class NotBuilt(Exception):
    """The peer this row measures is not part of the product yet."""


@dataclass(frozen=True)
class RowContext:
    bootstrap: str
    input_topic: str
    output_topic: str
    group: str
    count: int
    work_dir: Path  # this row's own scratch folder (logs, state)
    data_dir: Path  # the project's data folder (the quixstreams venv lives under it)
    database_url: str


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    start: Callable[[RowContext], subprocess.Popen[bytes]]
    lever: bool = False  # one Faust lever: only with ``--rows all`` or by name
    # The process ``start`` returns only launches the peer (sets up, starts it, waits, cleans
    # up): its memory is not the peer's (bench.peers.measure).
    launcher: bool = False


def _spawn(
    ctx: RowContext, argv: Sequence[str], env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    log = ctx.work_dir / "peer.log"
    with log.open("ab") as out:
        return subprocess.Popen(
            list(argv), cwd=ROOT, env=env or dict(os.environ), stdout=out, stderr=out
        )


def _peer_args(ctx: RowContext) -> list[str]:
    return [
        "--bootstrap", ctx.bootstrap, "--input", ctx.input_topic,
        "--output", ctx.output_topic, "--group", ctx.group,
    ]  # fmt: skip


def confluent_loop(ctx: RowContext) -> subprocess.Popen[bytes]:
    return _spawn(ctx, [sys.executable, "-m", "bench.peers.confluent_peer", *_peer_args(ctx)])


def faust_agent(*options: str) -> Callable[[RowContext], subprocess.Popen[bytes]]:
    """A Faust peer with the given ``faust_peer`` options (the levers)."""

    def start(ctx: RowContext) -> subprocess.Popen[bytes]:
        argv = [sys.executable, "-m", "bench.peers.faust_peer", *_peer_args(ctx)]
        argv += ["--datadir", str(ctx.work_dir / "faust"), *options]
        return _spawn(ctx, argv)

    return start


def quixstreams_app(ctx: RowContext) -> subprocess.Popen[bytes]:
    python = ensure_quix_venv(ctx.data_dir / "bench" / "quix-venv")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = [str(python), "-m", "bench.peers.quix_peer", *_peer_args(ctx)]
    return _spawn(ctx, [*argv, "--state-dir", str(ctx.work_dir / "quix-state")], env)


def synapseops_flow(ctx: RowContext) -> subprocess.Popen[bytes]:
    """The product itself: a Kafka → Kafka flow through the whole road, in a throwaway database
    on ``ctx.database_url``'s server (``bench.peers.synapseops_peer``)."""
    argv = [sys.executable, "-m", "bench.peers.synapseops_peer", *_peer_args(ctx)]
    argv += ["--database-url", ctx.database_url, "--work-dir", str(ctx.work_dir / "worker")]
    return _spawn(ctx, argv)


LINGER = ("--conf", "producer_linger=0.005", "--conf", "producer_max_batch_size=262144")
BEST = ("--iterate", "take", "--producer", "confluent", "--isolated")
BUFFERS = (
    "--conf", "stream_buffer_maxsize=16384", "--conf", "consumer_max_fetch_size=4194304",
    "--conf", "broker_commit_every=50000", "--conf", "broker_max_poll_records=2000",
)  # fmt: skip

# The order of the table; ratios are to the first row. ``lever`` rows run with ``--rows all`` (or
# by name): each turns one Faust lever, so together they show what each one buys.
ROWS: tuple[Row, ...] = (
    Row("confluent", "raw confluent-kafka loop (batch 500, linger 50 ms)", confluent_loop),
    Row("faust", "Faust agent, plain (items(), topic.send)", faust_agent()),
    Row("faust-events", "  events() instead of items()", faust_agent("--iterate", "events"), True),
    Row("faust-linger", "  + producer_linger 5 ms, batch 256 KB", faust_agent(*LINGER), True),
    Row("faust-take", "  take_events(500, 5 ms)", faust_agent("--iterate", "take"), True),
    Row(
        "faust-take-linger",
        "  take_events(500, 5 ms) + linger 5 ms",
        faust_agent("--iterate", "take", *LINGER),
        True,
    ),
    Row(
        "faust-take-confluent",
        "  take_events(500, 5 ms) + confluent producer",
        faust_agent("--iterate", "take", "--producer", "confluent"),
        True,
    ),
    Row("faust-best", "Faust: take + confluent + isolated_partitions", faust_agent(*BEST)),
    Row(
        "faust-best-cython",
        "  + cython_optimizations",
        faust_agent(*BEST, "--conf", "cython_optimizations=true"),
        True,
    ),
    Row("faust-best-buffers", "  + buffers/fetch/commit tuned", faust_agent(*BEST, *BUFFERS), True),
    Row("quixstreams", "quixstreams 3.28 (apply + to_topic)", quixstreams_app),
    Row("synapseops", "SynapseOps Kafka→Kafka flow, whole road", synapseops_flow, launcher=True),
)
