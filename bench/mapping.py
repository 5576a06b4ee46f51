"""The mapping engine on one core: µs per event for the Shopify→ERP and GitHub push golden
mappings, each stage apart — decode the body, map the decoded payload, both together (what
the delivery pipeline does per event), and write the output bytes. Prints; asserts nothing.

Every figure is the best of several rounds of process CPU time: a busy machine only adds to
what a round measures (other processes on the same cores, preemption), so the best round is
the closest to the engine's own cost; the median wall time is printed beside it. For
repeatable comparisons between versions, count instructions instead::

    valgrind --tool=callgrind python -m bench.mapping --stage map --events 300

(the difference to a run with ``--events 0`` over 300 is the instructions per event).
No broker or database is needed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from streams.mapping import compile_mapping, dump_output, load_payload
from synapseops.settings import PROJECT_ROOT

GOLDEN = PROJECT_ROOT / "tests" / "golden"
SAMPLES = PROJECT_ROOT / "samples"
CASES = {
    "shopify order → ERP order": ("shopify_order_to_erp", "shopify/order.json"),
    "github push → activity": ("github_push_to_activity", "github/push.with-new-branch.json"),
}
ROUNDS = 7
ROUND_SECONDS = 0.3


def _stages(case: str, payload: str) -> dict[str, Callable[[], Any]]:
    mapping = compile_mapping(json.loads((GOLDEN / f"{case}.mapping.json").read_text()))
    raw = (SAMPLES / payload).read_bytes()
    decoded = load_payload(raw)
    output = mapping.apply(decoded).raise_for_errors()
    return {
        "parse": lambda: load_payload(raw),
        "map": lambda: mapping.apply(decoded),
        "parse+map": lambda: mapping.apply(load_payload(raw)).raise_for_errors(),
        "dump": lambda: dump_output(output),
    }


def _measure(work: Callable[[], Any]) -> tuple[float, float]:
    """(best CPU µs, median wall µs) per call over ``ROUNDS`` rounds."""
    calls = 1
    started = time.perf_counter()
    while time.perf_counter() - started < 0.05:  # calibrate a round to ~ROUND_SECONDS
        for _ in range(calls):
            work()
        calls *= 2
    per_round = max(1, int(calls * ROUND_SECONDS / max(time.perf_counter() - started, 1e-6)))
    cpu, wall = [], []
    for _ in range(ROUNDS):
        cpu_start, wall_start = time.process_time(), time.perf_counter()
        for _ in range(per_round):
            work()
        cpu.append((time.process_time() - cpu_start) / per_round * 1e6)
        wall.append((time.perf_counter() - wall_start) / per_round * 1e6)
    return min(cpu), statistics.median(wall)


def run() -> None:
    """Print µs per event for each case and stage."""
    _say(f"{'case':<28}{'stage':<11}{'CPU µs (best)':>15}{'wall µs (median)':>18}")
    for title, (case, payload) in CASES.items():
        for stage, work in _stages(case, payload).items():
            cpu, wall = _measure(work)
            _say(f"{title:<28}{stage:<11}{cpu:>15.1f}{wall:>18.1f}")


def _repeat(stage: str, events: int) -> None:
    """Only the work, for an instruction count (``--stage``): no timing, no output."""
    case, payload = CASES["shopify order → ERP order"]
    work = _stages(case, payload)[stage]
    for _ in range(events):
        work()


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stage", choices=["parse", "map", "parse+map", "dump"])
    parser.add_argument("--events", type=int, default=300)
    arguments = parser.parse_args()
    if arguments.stage:
        _repeat(arguments.stage, arguments.events)
    else:
        run()
