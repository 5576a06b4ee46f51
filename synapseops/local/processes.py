"""A small supervisor for detached local processes: pid files, log files, stop, HTTP health.

A process is started in a session of its own (so it outlives the command that started it and
a stop can reach its whole process group), with stdout and stderr appended to
``{data_dir}/logs/<name>.log`` and its pid in ``{data_dir}/run/<name>.pid``.

The pid file holds the pid and the process' start time (from ``/proc``). A pid file whose
process is gone, a zombie, or a *different* process that got the same pid later, is stale: it is
treated as "not running" and removed.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from synapseops.errors import ConfigurationError

log = logging.getLogger(__name__)

_POLL_S = 0.2


@dataclass(frozen=True)
class PidRecord:
    pid: int
    # Start time in clock ticks since boot (/proc/<pid>/stat field 22); None if unknown.
    started: int | None = None


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name, or None if there is none."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name is in parentheses and may itself contain spaces and parentheses.
    return raw[raw.rfind(")") + 2 :].split()


def start_time(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def _reap(pid: int) -> None:
    """Collect the exit status if ``pid`` is our own child, so it does not linger as a zombie."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def pid_alive(pid: int, started: int | None = None) -> bool:
    """True if ``pid`` runs (not a zombie) and, when ``started`` is given, is that same process."""
    _reap(pid)
    fields = _stat_fields(pid)
    if fields is None or fields[0] in ("Z", "X"):
        return False
    return started is None or int(fields[19]) == started


def group_members(pgid: int) -> list[int]:
    """Live processes whose process group is ``pgid``."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields and fields[0] not in ("Z", "X") and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def write_pid_file(path: Path, pid: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    started = start_time(pid)
    tmp = path.with_suffix(".pid.tmp")
    tmp.write_text(f"{pid}\n{started if started is not None else ''}\n")
    tmp.replace(path)  # atomic: a reader never sees half a pid file


def read_pid_file(path: Path) -> PidRecord | None:
    try:
        lines = path.read_text().split("\n")
    except FileNotFoundError:
        return None
    try:
        pid = int(lines[0].strip())
    except ValueError:
        return None
    started = lines[1].strip() if len(lines) > 1 else ""
    return PidRecord(pid, int(started) if started.isdigit() else None)


def live_pid(path: Path) -> int | None:
    """The pid in ``path`` if that process still runs; a stale pid file is removed."""
    record = read_pid_file(path)
    if record is not None and pid_alive(record.pid, record.started):
        return record.pid
    if path.exists():
        log.info("removing stale pid file %s", path)
        path.unlink(missing_ok=True)
    return None


def port_in_use(host: str, port: int) -> bool:
    """True if something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def http_status(url: str, timeout: float = 2.0) -> int | None:
    """The status of a GET on ``url``, or None when nothing answered in time."""
    try:
        return httpx.get(url, timeout=timeout).status_code
    except httpx.HTTPError:
        return None


def log_tail(path: Path, lines: int = 25) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 16_384))
            text = handle.read().decode(errors="replace")
    except FileNotFoundError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


def spawn(
    argv: Sequence[str],
    *,
    log_path: Path,
    pid_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> int:
    """Start ``argv`` detached (own session), output appended to ``log_path``; returns the pid."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as out:
        try:
            child = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                start_new_session=True,
            )
        except OSError as exc:
            raise ConfigurationError(f"cannot start {argv[0]}: {exc}") from exc
    # The child keeps running after this Popen object is gone; pid_alive() reaps it later.
    child.returncode = 0  # silences Popen's "still running" ResourceWarning at garbage collection
    write_pid_file(pid_path, child.pid)
    return child.pid


def terminate(pid: int, timeout: float = 15.0) -> None:
    """SIGTERM the process group led by ``pid``, wait, then SIGKILL whatever is left of it."""
    if not _signal_group(pid, signal.SIGTERM):
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid) and not group_members(pid):
            return
        time.sleep(_POLL_S)
    log.warning("pid %d did not stop in %.0fs; killing its process group", pid, timeout)
    _signal_group(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and (pid_alive(pid) or group_members(pid)):
        time.sleep(_POLL_S)


def _signal_group(pgid: int, sig: signal.Signals) -> bool:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        # No group of that id (the process was not started by spawn): signal the pid alone.
        try:
            os.kill(pgid, sig)
        except ProcessLookupError:
            return False
    return True


class ManagedProcess:
    """One supervised process of the platform (``sandbox``, ``worker``, ``api``, ...).

    ``health_url`` answers 200 when the process is healthy; any status in ``alive_statuses``
    means the process is up (e.g. the API answers 503 while its database is unreachable).
    ``port`` (host, port) is the address it will listen on: if something else already does, a
    start is refused, so another stack's process is never mistaken for this one.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        data_dir: Path,
        health_url: str,
        alive_statuses: Collection[int] = (200,),
        port: tuple[str, int] | None = None,
    ) -> None:
        self.name = name
        self.port = port
        self.argv = list(argv)
        self.health_url = health_url
        self.alive_statuses = frozenset(alive_statuses)
        self.pid_path = data_dir / "run" / f"{name}.pid"
        self.log_path = data_dir / "logs" / f"{name}.log"

    def pid(self) -> int | None:
        return live_pid(self.pid_path)

    def is_running(self) -> bool:
        return self.pid() is not None

    def healthy(self, timeout: float = 2.0) -> bool:
        return self.is_running() and http_status(self.health_url, timeout) == 200

    def start(
        self,
        env: Mapping[str, str] | None = None,
        *,
        cwd: Path | None = None,
        wait: bool = True,
        timeout: float = 60.0,
    ) -> int:
        """Start unless already running; with ``wait``, until the health URL answers."""
        pid = self.pid()
        if pid is not None:
            log.info("%s already running (pid %d)", self.name, pid, extra={"service": self.name})
            return pid
        if self.port is not None and port_in_use(*self.port):
            host, port = self.port
            raise ConfigurationError(
                f"cannot start {self.name}: {host}:{port} is taken by another process"
            )
        pid = spawn(self.argv, log_path=self.log_path, pid_path=self.pid_path, env=env, cwd=cwd)
        log.info("started %s (pid %d)", self.name, pid, extra={"service": self.name})
        if wait:
            self._wait_alive(pid, timeout)
        return pid

    def _wait_alive(self, pid: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not pid_alive(pid):
                self.pid_path.unlink(missing_ok=True)
                raise ConfigurationError(
                    f"{self.name} exited while starting; the end of {self.log_path}:\n"
                    + log_tail(self.log_path)
                )
            if http_status(self.health_url, timeout=1.0) in self.alive_statuses:
                return
            time.sleep(_POLL_S)
        raise ConfigurationError(
            f"{self.name} (pid {pid}) did not answer {self.health_url} within {timeout:.0f}s; "
            f"the end of {self.log_path}:\n" + log_tail(self.log_path)
        )

    def stop(self, timeout: float = 15.0) -> None:
        pid = self.pid()
        if pid is not None:
            terminate(pid, timeout)
            log.info("stopped %s (pid %d)", self.name, pid, extra={"service": self.name})
        self.pid_path.unlink(missing_ok=True)
