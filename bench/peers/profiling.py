"""``--profile PATH`` of a peer: yappi over every thread on the CPU clock, written on exit.

yappi (not cProfile) because a Faust worker spends CPU in three threads — the event loop, the
aiokafka consumer thread and librdkafka's — and cProfile sees only the one that started it.
Install it into the project's environment for a profiling session: ``pip install yappi``.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def profiled(path: Path, limit: int = 60) -> Iterator[None]:
    import yappi

    yappi.set_clock_type("cpu")
    yappi.start(builtins=False, profile_threads=True)
    try:
        yield
    finally:
        yappi.stop()
        out = io.StringIO()
        stats = yappi.get_func_stats()
        stats.sort("ttot", "desc")
        stats.print_all(
            out=out,
            columns={0: ("name", 110), 1: ("ncall", 12), 2: ("tsub", 9), 3: ("ttot", 9)},
        )
        by_self = yappi.get_func_stats()
        by_self.sort("tsub", "desc")
        own = io.StringIO()
        by_self.print_all(
            out=own,
            columns={0: ("name", 110), 1: ("ncall", 12), 2: ("tsub", 9), 3: ("ttot", 9)},
        )
        threads = io.StringIO()
        yappi.get_thread_stats().print_all(out=threads)
        text = "\n".join(
            [
                "== threads (CPU seconds) ==",
                threads.getvalue(),
                f"== top {limit} by total time (inclusive) ==",
                "\n".join(out.getvalue().splitlines()[: limit + 3]),
                f"== top {limit} by own time ==",
                "\n".join(own.getvalue().splitlines()[: limit + 3]),
            ]
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
