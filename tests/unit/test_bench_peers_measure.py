"""The peers bench's process tree on real processes: a launcher's own memory is left out of
the peer's peak RSS when its row says so, its child's is counted either way."""

from __future__ import annotations

import subprocess
import sys
import time

from bench.peers.measure import ProcessTree

# The launcher holds 150 MiB itself, then starts a child holding 40 MiB and waits for it.
LAUNCHER = """
import subprocess, sys
held = bytearray(150 * 2**20)
child = "import time; held = bytearray(40 * 2**20); time.sleep(1)"
subprocess.run([sys.executable, "-c", child], check=True)
"""


def _peak_of_run(*, root_rss: bool) -> float:
    process = subprocess.Popen([sys.executable, "-c", LAUNCHER])
    tree = ProcessTree(process.pid, root_rss=root_rss)
    try:
        while process.poll() is None:
            tree.sample()
            time.sleep(0.05)
    finally:
        process.wait(timeout=30)
    return tree.peak_rss / 2**20


def test_a_launchers_own_memory_is_not_charged_to_its_peer() -> None:
    whole, peer_only = _peak_of_run(root_rss=True), _peak_of_run(root_rss=False)
    assert whole >= 190  # launcher and child: 150 + 40 MiB held, plus two interpreters
    assert 40 <= peer_only < 100  # the child alone: 40 MiB held plus its interpreter
