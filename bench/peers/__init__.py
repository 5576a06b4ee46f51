"""``python -m bench peers``: Kafka → Kafka runtimes side by side, on the same broker, in one run.

The same N (default 200,000) ~1 KB Shopify orders are produced once to a 6-partition topic; each
peer — a raw confluent-kafka loop, Faust agents (plain, then one lever at a time), quixstreams
in its own virtual environment, and the SynapseOps flow with the whole road once it exists —
runs in its own process, reads that topic with its own group, maps every order with the exact
same function (``bench.peers.work.order_mapper``) and writes its own output topic, which is then
verified record by record. One table: msgs/s, CPU seconds per million messages (user + sys of
the peer's processes) and peak RSS, each also as a ratio to the first row.

Options::

    --messages N        orders in the input (default 200000)
    --rows a,b,...      only these rows (keys in ``bench.peers.rows.ROWS``), in table order
    --timeout S         give up on a peer after S seconds (default 60 + N/1000)

``SYNAPSEOPS_BENCH_PROFILE=DIR`` runs the Faust peers under yappi and writes one profile per
row into DIR (figures of those rows are then the profiler's, not Faust's).
"""

from __future__ import annotations

import argparse
import sys

from bench.peers.rows import ROWS


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench peers")
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--rows", default=",".join(row.key for row in ROWS))
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--timeout", type=float)
    args = parser.parse_args(argv)
    known = {row.key for row in ROWS}
    wanted = [key.strip() for key in args.rows.split(",") if key.strip()]
    if unknown := [key for key in wanted if key not in known]:
        parser.error(f"unknown row(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    args.rows = [row for row in ROWS if row.key in wanted]
    return args


def run(argv: list[str] | None = None) -> None:
    import os

    from bench.peers.harness import finish, prepare
    from bench.peers.table import render
    from synapseops.settings import Settings

    args = _parse(argv or [])
    timeout = args.timeout or 60 + args.messages / 1000
    bench = prepare(Settings(), args.messages, args.partitions)
    results = []
    try:
        for row in args.rows:
            result = bench.run_row(row, timeout)
            results.append(result)
            figures = result.figures
            done = f"{figures.rate:,.0f} msgs/s" if figures else result.note
            verdict = f", output {result.verdict.summary()}" if result.verdict else ""
            sys.stdout.write(f"  {row.key}: {done}{verdict}\n")
            sys.stdout.flush()
    finally:
        finish(bench)
    cores = os.cpu_count()
    sys.stdout.write(
        f"\n{args.messages:,} Shopify orders (~1.2 KB), {args.partitions} partitions, "
        f"{cores} cores, one peer at a time; ratios to the first row\n"
    )
    sys.stdout.write("\n".join(render(results)) + "\n")
    sys.stdout.flush()
