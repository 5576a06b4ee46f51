"""Row c: quixstreams doing the same work, run from its own virtual environment.

A StreamingDataFrame with one ``apply`` (the shared :func:`order_mapper`) and ``to_topic``;
quixstreams' defaults otherwise (at-least-once, commit every 5 s, its confluent-kafka
producer). Keys and values stay bytes both ways.

    .data/bench/quix-venv/bin/python -m bench.peers.quix_peer --bootstrap ... --state-dir D
"""

from __future__ import annotations

import sys

from quixstreams import Application

from bench.peers.args import peer_parser
from bench.peers.work import order_mapper


def main(argv: list[str]) -> int:
    parser = peer_parser("quixstreams mapping orders")
    parser.add_argument("--state-dir", required=True)
    args = parser.parse_args(argv)
    app = Application(
        broker_address=args.bootstrap,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        state_dir=args.state_dir,
        loglevel="WARNING",
    )
    source = app.topic(args.input, key_deserializer="bytes", value_deserializer="bytes")
    sink = app.topic(args.output, key_serializer="bytes", value_serializer="bytes")
    frame = app.dataframe(source)
    frame = frame.apply(order_mapper())
    frame.to_topic(sink)
    app.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
