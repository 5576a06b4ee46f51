"""Where a peer's CPU went: py-spy's collapsed stacks (``SYNAPSEOPS_BENCH_PYSPY``) summed by part.

``python -m bench.peers.stacks .data/bench/profiles/faust.txt [--per N]`` prints, per thread
and per part of the runtime, its share of the samples, and with ``--per N`` (the records the
peer handled) the CPU that share is per record, given the row's CPU per record in µs
(``--cpu-us``). Each sample goes to the frame nearest its leaf that belongs to a known part, so
``json.dumps`` called by the mapping engine counts as mapping and a socket write made by
aiokafka counts as aiokafka; the generic parts (mode, the event loop) only get what
no specific part above them claims.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

# (part, pattern on a frame's "function (file:line)"), nearest-to-leaf match wins.
PARTS: tuple[tuple[str, str], ...] = (
    # Specific parts first: the nearest of these to the leaf takes the sample ...
    ("logging (records built for debug calls)", r"logging/"),
    ("mapping (streams.mapping)", r"streams/mapping/|bench/peers/work\.py"),
    (
        "confluent producer (produce + delivery)",
        r"bench/peers/batch_sender\.py|confluent_kafka|synapseops/kafka",
    ),
    ("SQLAlchemy + psycopg2 (Runs, catalog)", r"sqlalchemy/|psycopg2"),
    ("SynapseOps integration (flows, Runs)", r"streams/integration/|sinks/integration/"),
    ("SynapseOps road (batches, headers)", r"streams/road/|synapseops/headers|prometheus_client"),
    ("aiokafka producer (batching, encoding)", r"aiokafka/producer/|aiokafka/record/"),
    ("aiokafka consumer (fetch, decode)", r"aiokafka/consumer/"),
    ("aiokafka network + protocol", r"aiokafka/(conn|client|protocol)"),
    ("Faust topic.send / publish", r"faust/(topics|channels)\.py"),
    ("Faust conductor (message -> event)", r"faust/transport/conductor\.py|faust/events\.py"),
    ("Faust stream iteration + ack", r"faust/streams\.py|faust/_cython|faust/agents/"),
    ("Faust consumer (drain, commit, acks)", r"faust/transport/(consumer|drivers)"),
    # ... and only a stack with none of them goes to the nearest generic one.
    ("mode (services, queues, timers)", r"mode/"),
    ("asyncio event loop", r"asyncio/|selectors\.py"),
)
GENERIC = 2  # the last two parts
COMPILED = [(part, re.compile(pattern)) for part, pattern in PARTS]
# py-spy's raw lines; with --subprocesses each starts with the process it sampled.
LINE = re.compile(r'^(?:process \d+:"[^"]*";)*thread \((\w+)\): ([^;]*);(.*) (\d+)$')


def part_of(frames: list[str]) -> str:
    for parts in (COMPILED[:-GENERIC], COMPILED[-GENERIC:]):
        for frame in reversed(frames):
            for part, pattern in parts:
                if pattern.search(frame):
                    return part
    return "other"


def summarise(path: Path) -> tuple[Counter[str], Counter[str], int]:
    by_part: Counter[str] = Counter()
    by_thread: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        match = LINE.match(line)
        if not match:
            continue
        _tid, thread, stack, count = match.groups()
        samples = int(count)
        frames = stack.split(";")
        total += samples
        by_thread[thread.strip()] += samples
        by_part[part_of(frames)] += samples
    return by_part, by_thread, total


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.peers.stacks")
    parser.add_argument("profile", type=Path)
    parser.add_argument("--cpu-us", type=float, help="the row's CPU per record, µs")
    args = parser.parse_args(argv)
    by_part, by_thread, total = summarise(args.profile)
    out = sys.stdout
    out.write(f"{total:,} samples\n\nby thread:\n")
    for thread, samples in by_thread.most_common():
        out.write(f"  {samples / total:6.1%}  {thread}\n")
    out.write("\nby part:\n")
    for part, samples in by_part.most_common():
        share = samples / total
        per = f"  ~{share * args.cpu_us:5.0f} µs/record" if args.cpu_us else ""
        out.write(f"  {share:6.1%}{per}  {part}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
