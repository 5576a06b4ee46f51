"""The browser tests run after every other test, whatever order the paths are given in: their
session fixtures (Playwright's driver keeps an event loop running in the main thread, the
stack's API and worker) would break or disturb any test after them."""

from __future__ import annotations

import subprocess
import sys

from synapseops.settings import PROJECT_ROOT


def test_the_browser_tests_are_collected_last() -> None:
    collected = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         "tests/e2e", "tests/unit/test_kernel.py"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert collected.returncode == 0, collected.stdout[-2000:] + collected.stderr[-2000:]
    ids = [line for line in collected.stdout.splitlines() if "::" in line]
    browser = [i for i, test in enumerate(ids) if test.startswith("tests/e2e/")]
    assert browser and ids[: len(ids) - len(browser)], ids
    assert browser == list(range(len(ids) - len(browser), len(ids))), ids
