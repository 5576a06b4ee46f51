"""httpcore finds sniffio: without it every outbound request paid ~0.8 ms of CPU for four failed
imports (pyproject.toml says why it is a dependency of ours)."""

from __future__ import annotations

import asyncio
import sys

from httpcore._synchronization import current_async_library


def test_httpcore_asks_sniffio_which_loop_runs_instead_of_failing_an_import() -> None:
    async def ask() -> str:
        return current_async_library()

    assert asyncio.run(ask()) == "asyncio"
    assert "sniffio" in sys.modules  # the import httpcore tries on each lock and event worked
