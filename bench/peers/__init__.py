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
    --rows a,b,...      these rows (keys in ``bench.peers.rows.ROWS``), in table order; ``all``
                        adds the Faust lever rows to the default ones
    --timeout S         give up on a peer after S seconds (default 120 + N/150: the flow
                        row at 200,000 orders on loaded shared cores runs ~10 minutes)

``SYNAPSEOPS_BENCH_PYSPY=DIR`` samples every peer with py-spy (from outside its process tree)
into ``DIR/<row>.txt``; ``python -m bench.peers.stacks DIR/<row>.txt`` sums a profile by part.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from bench.peers.rows import ROWS


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench peers")
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--rows", default=",".join(row.key for row in ROWS if not row.lever))
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--timeout", type=float)
    args = parser.parse_args(argv)
    known = {row.key for row in ROWS}
    wanted = [key.strip() for key in args.rows.split(",") if key.strip()]
    if wanted == ["all"]:
        wanted = sorted(known)
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
    timeout = args.timeout or 120 + args.messages / 150
    bench = prepare(Settings(), args.messages, args.partitions)
    results = []
    try:
        for row in args.rows:
            result = bench.run_row(row, timeout)
            results.append(result)
            figures = result.figures
            done = (
                f"{figures.rate:,.0f} msgs/s, {figures.cpu_per_million:,.0f} µs CPU per message "
                f"({figures.system_share:.0%} in the kernel)"
                if figures
                else result.note
            )
            verdict = f", output {result.verdict.summary()}" if result.verdict else ""
            note = f" [{result.note}]" if figures and result.note else ""
            sys.stdout.write(f"  {row.key}: {done}{verdict}{note}\n")
            sys.stdout.flush()
    finally:
        finish(bench)
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    sys.stdout.write(
        f"\n{args.messages:,} Shopify orders (~1.2 KB), {args.partitions} partitions, "
        f"{os.cpu_count()} cores (load average now {load}), one peer at a time; ratios to the "
        f"first row. The mapping alone: {bench.mapping_us:,.0f} µs CPU per order.\n"
        "msgs/s moves with whatever else the machine runs; CPU s/M (= µs per message) much less.\n"
    )
    sys.stdout.write("\n".join(render(results, bench.mapping_us)) + "\n")
    sys.stdout.flush()
    _goals(results)


def _goals(results: list[Any]) -> None:
    from bench import goals

    rates = {r.row.key: r.figures.rate for r in results if r.figures and r.verdict and r.verdict.ok}
    flow = rates.get("synapseops")
    if flow is None:
        return
    for key, peer, bar in (("flow-faust", "faust", 1.0), ("flow-quix", "quixstreams", None)):
        if peer in rates:
            ratio = flow / rates[peer]
            figure = f"{ratio:.2f}x ({flow:,.0f} vs {rates[peer]:,.0f} msgs/s)"
            goals.measured(key, figure, None if bar is None else ratio >= bar)
