"""Rows b and the Faust levers: one Faust agent that maps every order to the output topic.

Plain (row b) is what a Faust user writes first::

    async for key, value in stream.items():
        await output.send(key=key, value=map_order(value))

The options turn the levers one at a time while it stays a Faust agent:

``--iterate events``       iterate ``stream.events()`` instead of ``items()``
``--iterate take``         ``stream.take_events(N, within)``: a list of events per step
                           (``--take N --within MS``, default 500 and 5 ms)
``--producer confluent``   produce through a confluent-kafka producer (``batch_sender``),
                           one future per batch, awaited before the batch is acked
``--isolated``             ``isolated_partitions=True``: one actor per assigned partition
``--conf NAME=VALUE``      any Faust setting (``stream_buffer_maxsize=16384``, ...)

Correctness of every variant: an event is acked only after its output is durable or queued in
Faust's own producer (whose ``flush()`` Faust's commit awaits before committing); ``take``
acks its whole list when the loop body returns, so the body awaits the batch's deliveries.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

import faust
from faust.types import EventT, StreamT

from bench.peers.args import peer_parser
from bench.peers.batch_sender import BatchSender
from bench.peers.work import order_mapper


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = peer_parser("a Faust agent mapping orders (see the module docstring)")
    parser.add_argument("--iterate", choices=("items", "events", "take"), default="items")
    parser.add_argument("--take", type=int, default=500)
    parser.add_argument("--within", type=float, default=5.0, help="milliseconds")
    parser.add_argument("--producer", choices=("faust", "confluent"), default="faust")
    parser.add_argument("--isolated", action="store_true")
    parser.add_argument("--conf", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--datadir", required=True)
    return parser.parse_args(argv)


def _setting(text: str) -> tuple[str, Any]:
    name, _, raw = text.partition("=")
    value: Any = raw
    if raw.lower() in ("true", "false"):
        value = raw.lower() == "true"
    else:
        for kind in (int, float):
            try:
                value = kind(raw)
                break
            except ValueError:
                continue
    return name, value


def build_app(args: argparse.Namespace) -> faust.App:
    settings = dict(_setting(text) for text in args.conf)
    app = faust.App(
        args.group,
        broker=f"kafka://{args.bootstrap}",
        key_serializer="raw",
        value_serializer="raw",
        store="memory://",
        datadir=args.datadir,
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        **settings,
    )
    source = app.topic(args.input, key_type=bytes, value_type=bytes)
    sink = app.topic(args.output, key_type=bytes, value_type=bytes)
    sender = BatchSender(args.bootstrap) if args.producer == "confluent" else None
    body = _body(args, sink, order_mapper(), sender)
    app.agent(source, name="relay", isolated_partitions=args.isolated)(body)
    return app


def _body(
    args: argparse.Namespace,
    sink: faust.TopicT,
    map_order: Callable[[bytes], bytes],
    sender: BatchSender | None,
) -> Callable[[StreamT[bytes]], Awaitable[None]]:
    """The agent's function for the chosen variant (each a loop a user would write)."""
    output = args.output

    async def send_all(events: Sequence[EventT[bytes]]) -> None:
        if sender is not None:
            await sender.send_batch(output, [(e.key, map_order(e.value)) for e in events])
        else:
            for event in events:
                await sink.send(key=event.key, value=map_order(event.value))

    async def items(stream: StreamT[bytes]) -> None:
        async for key, value in stream.items():
            await sink.send(key=key, value=map_order(value))

    async def events(stream: StreamT[bytes]) -> None:
        async for event in stream.events():
            await send_all((event,))

    async def take(stream: StreamT[bytes]) -> None:
        async for batch in cast(faust.Stream[bytes], stream).take_events(
            args.take, within=args.within / 1000
        ):
            await send_all(batch)

    return {"items": items, "events": events, "take": take}[args.iterate]


def main(argv: list[str]) -> int:
    args = _parse(argv)
    app = build_app(args)
    from faust.worker import Worker

    # As the product's worker does (streams/worker.py): Faust's default progress spinner sets the
    # root logger to DEBUG, so every logger.debug() in aiokafka and Faust builds a LogRecord
    # (~30 µs a message here) only for the handler to drop it.
    logging.basicConfig(level=logging.WARNING)
    worker = Worker(app, loglevel="WARNING", quiet=True, override_logging=False)
    worker.spinner = None
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
