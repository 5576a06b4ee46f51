"""CPU and memory of a peer's processes, read from ``/proc`` while it runs.

CPU is user + system time of the process and every descendant it has (threads included: a
process' ``stat`` sums its threads), summed over every pid ever seen, so a child that exits keeps
its share. Peak RSS is the sum of each process' high-water mark (``VmHWM``) — but a root that
is only a launcher (it sets things up, starts the peer and waits: ``root_rss=False``) is left
out of it, or the table would charge its imports to the peer.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

PROC = Path("/proc")
TICKS = os.sysconf("SC_CLK_TCK")


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in (PROC / str(current) / "task").glob("*/children"):
            try:
                todo.extend(int(child) for child in task.read_text().split())
            except OSError:
                continue
    return found


def _cpu_ticks(pid: int) -> tuple[int, int] | None:
    """(user, system) clock ticks of one process, all its threads."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # Fields after the parenthesised command (which may hold spaces): utime is 14th, stime 15th.
    fields = text.rsplit(")", 1)[1].split()
    return int(fields[11]), int(fields[12])


def _peak_rss(pid: int) -> int | None:
    try:
        for line in (PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


@dataclass
class ProcessTree:
    """Samples of one peer (its root pid and whatever it starts)."""

    root: int
    root_rss: bool = True  # False: the root only launches the peer (module docstring)
    _ticks: dict[int, tuple[int, int]] = field(default_factory=dict)
    _rss: dict[int, int] = field(default_factory=dict)

    def sample(self) -> float:
        """CPU seconds (user + system) used so far by the tree."""
        for pid in _descendants(self.root):
            ticks = _cpu_ticks(pid)
            if ticks is not None:
                self._ticks[pid] = ticks
            rss = _peak_rss(pid) if self.root_rss or pid != self.root else None
            if rss is not None:
                self._rss[pid] = max(rss, self._rss.get(pid, 0))
        return sum(user + system for user, system in self._ticks.values()) / TICKS

    @property
    def system(self) -> float:
        """CPU seconds in the kernel so far (socket writes and reads, mostly)."""
        return sum(system for _, system in self._ticks.values()) / TICKS

    @property
    def peak_rss(self) -> int:
        return sum(self._rss.values())
