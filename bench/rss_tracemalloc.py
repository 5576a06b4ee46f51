"""``python -m bench rss --tracemalloc DIR``: what the worker's Python heap grew by, from outside.

The worker is started with a ``sitecustomize`` (written to ``DIR``, put first on its
``PYTHONPATH``) that starts :mod:`tracemalloc` before any import, writes the traced total
every 30 s (``DIR/traced.txt``: seconds, bytes) and dumps a snapshot at each of the given
moments (``DIR/snapshot-<s>.pickle``). Nothing of the product knows about it. Afterwards
:func:`report` prints the traced totals beside RSS and the allocation sites that grew most
between the first and the last snapshot: when the traced heap is flat while RSS grows, the
growth is native (librdkafka, the allocator's arenas), not Python objects.

Tracing costs CPU and memory (the worker's RSS roughly doubles): run it at a lower rate than
a plain RSS run, for the shape of the growth, not its size.
"""

from __future__ import annotations

import sys
import tracemalloc
from collections.abc import Sequence
from pathlib import Path

SITECUSTOMIZE = """
import os, threading, time, tracemalloc

_folder = os.environ.get("SYNAPSEOPS_BENCH_TRACEMALLOC_DIR")
if _folder:
    tracemalloc.start(int(os.environ.get("SYNAPSEOPS_BENCH_TRACEMALLOC_FRAMES", "6")))
    _at = sorted(float(x) for x in os.environ["SYNAPSEOPS_BENCH_TRACEMALLOC_AT"].split(","))

    def _watch():
        start = time.monotonic()
        with open(os.path.join(_folder, "traced.txt"), "a") as out:
            while True:
                now = time.monotonic() - start
                out.write(f"{now:.0f} {tracemalloc.get_traced_memory()[0]}\\n")
                out.flush()
                while _at and now >= _at[0]:
                    moment = _at.pop(0)
                    path = os.path.join(_folder, f"snapshot-{moment:.0f}.pickle")
                    tracemalloc.take_snapshot().dump(path)
                time.sleep(30 if not _at else min(30, max(0.5, _at[0] - now)))

    threading.Thread(target=_watch, daemon=True, name="bench-tracemalloc").start()
"""


def environment(folder: Path, moments_s: Sequence[float]) -> dict[str, str]:
    """The worker's extra environment; writes the ``sitecustomize`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return {
        "PYTHONPATH": str(folder),
        "SYNAPSEOPS_BENCH_TRACEMALLOC_DIR": str(folder),
        "SYNAPSEOPS_BENCH_TRACEMALLOC_AT": ",".join(f"{m:.0f}" for m in moments_s),
    }


def report(folder: Path, top: int = 25) -> None:
    say = sys.stdout.write
    traced = (folder / "traced.txt").read_text().split() if (folder / "traced.txt").exists() else []
    pairs = list(zip(traced[::2], traced[1::2], strict=False))
    say("  traced Python heap (s: MB): ")
    say(", ".join(f"{s}: {int(b) / 2**20:.0f}" for s, b in pairs[::2]) + "\n")
    snapshots = sorted(folder.glob("snapshot-*.pickle"), key=lambda p: int(p.stem.split("-")[1]))
    if len(snapshots) < 2:
        say("  fewer than two tracemalloc snapshots\n")
        return
    first = tracemalloc.Snapshot.load(str(snapshots[0]))
    last = tracemalloc.Snapshot.load(str(snapshots[-1]))
    say(f"  grew most from {snapshots[0].stem} to {snapshots[-1].stem}:\n")
    for stat in last.compare_to(first, "traceback")[:top]:
        frames = " <- ".join(
            f"{Path(frame.filename).name}:{frame.lineno}" for frame in stat.traceback[:4]
        )
        say(f"  {stat.size_diff / 2**20:+7.2f} MB {stat.count_diff:+8d} blocks  {frames}\n")


if __name__ == "__main__":
    report(Path(sys.argv[1]))
