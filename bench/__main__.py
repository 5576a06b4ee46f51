"""``python -m bench [name ...] [options]``: run the benchmarks (all, or the named ones) and print
figures. Options (from the first argument that starts with ``-``) go to every chosen benchmark
whose ``run`` takes them: ``python -m bench peers --messages 50000``."""

from __future__ import annotations

import importlib
import inspect
import sys
import time

BENCHES: tuple[str, ...] = (
    "road", "integration", "payments", "peers", "ingress", "rss", "mapping", "overload",
    "aggregation", "aggregation_upload", "crm",
)  # fmt: skip
PURE: frozenset[str] = frozenset({"mapping"})  # CPU only: no broker, no database


def main(argv: list[str]) -> int:
    split = next((i for i, arg in enumerate(argv) if arg.startswith("-")), len(argv))
    names, options = argv[:split], argv[split:]
    if options[:1] == ["--"]:
        options = options[1:]
    chosen = names or list(BENCHES)
    unknown = [name for name in chosen if name not in BENCHES]
    if unknown:
        sys.stderr.write(f"unknown benchmark(s): {', '.join(unknown)}; known: {BENCHES}\n")
        return 2
    # The broker and the database the benchmarks need, brought up by the project's own code.
    from synapseops.local.stack import LocalStack
    from synapseops.settings import Settings

    if set(chosen) - PURE:
        LocalStack(Settings()).up(only=("kafka", "postgres", "migrate", "topics"))
    for name in chosen:
        module = importlib.import_module(f"bench.{name}")
        sys.stdout.write(f"\n=== bench {name} ===\n")
        sys.stdout.flush()
        started = time.monotonic()
        if inspect.signature(module.run).parameters:
            module.run(options)
        else:
            module.run()
        sys.stdout.write(f"--- bench {name} took {time.monotonic() - started:.1f}s\n")
    from bench import goals

    sys.stdout.write("\n=== issue 10's goals ===\n" + "\n".join(goals.table()) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
