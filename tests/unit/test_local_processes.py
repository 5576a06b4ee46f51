"""Pid files, stale pid detection and process-group stops of the local supervisor."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from synapseops.errors import ConfigurationError
from synapseops.local.processes import (
    ManagedProcess,
    group_members,
    live_pid,
    pid_alive,
    read_pid_file,
    spawn,
    start_time,
    terminate,
    write_pid_file,
)


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_pid_file_round_trip_keeps_pid_and_start_time(tmp_path: Path) -> None:
    path = tmp_path / "run" / "me.pid"
    write_pid_file(path, os.getpid())
    record = read_pid_file(path)
    assert record is not None
    assert record.pid == os.getpid() and record.started == start_time(os.getpid())
    assert live_pid(path) == os.getpid()


def test_pid_file_of_a_dead_process_is_stale_and_removed(tmp_path: Path) -> None:
    path = tmp_path / "gone.pid"
    path.write_text(f"{_dead_pid()}\n")
    assert live_pid(path) is None
    assert not path.exists()


def test_pid_reused_by_another_process_is_stale(tmp_path: Path) -> None:
    path = tmp_path / "reused.pid"
    started = start_time(os.getpid())
    assert started is not None
    path.write_text(f"{os.getpid()}\n{started + 1}\n")  # same pid, a different process' start
    assert live_pid(path) is None


def test_unreadable_pid_file_counts_as_not_running(tmp_path: Path) -> None:
    path = tmp_path / "garbage.pid"
    path.write_text("not a pid\n")
    assert read_pid_file(path) is None
    assert live_pid(path) is None
    assert read_pid_file(tmp_path / "missing.pid") is None


def test_terminate_stops_the_whole_process_group(tmp_path: Path) -> None:
    # A shell with two children of its own: all three must go.
    pid = spawn(
        ["sh", "-c", "sleep 60 & sleep 60 & wait"],
        log_path=tmp_path / "logs" / "group.log",
        pid_path=tmp_path / "run" / "group.pid",
    )
    deadline = time.monotonic() + 5
    while len(group_members(pid)) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(group_members(pid)) == 3
    terminate(pid, timeout=5)
    assert not pid_alive(pid)
    assert group_members(pid) == []


def test_terminate_kills_a_process_that_ignores_sigterm(tmp_path: Path) -> None:
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"  # noqa: E501
    log_path = tmp_path / "stubborn.log"
    pid = spawn([sys.executable, "-c", code], log_path=log_path, pid_path=tmp_path / "s.pid")
    deadline = time.monotonic() + 10
    while "ready" not in log_path.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    terminate(pid, timeout=0.5)
    assert not pid_alive(pid)


def test_process_that_exits_while_starting_reports_its_log(tmp_path: Path) -> None:
    process = ManagedProcess(
        "crashy",
        [sys.executable, "-c", "import sys; print('boom: no such module'); sys.exit(3)"],
        data_dir=tmp_path,
        health_url="http://127.0.0.1:9/health",
    )
    with pytest.raises(ConfigurationError, match="boom: no such module"):
        process.start(timeout=10)
    assert not process.pid_path.exists()
    assert process.pid() is None


def test_managed_process_start_is_idempotent_and_stop_clears_it(tmp_path: Path) -> None:
    process = ManagedProcess(
        "sleeper",
        [sys.executable, "-c", "import time; time.sleep(60)"],
        data_dir=tmp_path,
        health_url="http://127.0.0.1:9/health",
    )
    pid = process.start(wait=False)
    assert process.start(wait=False) == pid
    assert process.log_path == tmp_path / "logs" / "sleeper.log"
    assert not process.healthy()  # nothing answers on its health URL
    process.stop(timeout=5)
    assert not pid_alive(pid)
    assert process.pid() is None and not process.pid_path.exists()


def test_a_taken_port_refuses_the_start_instead_of_trusting_a_stranger(tmp_path: Path) -> None:
    with socket.socket() as stranger:
        stranger.bind(("127.0.0.1", 0))
        stranger.listen()
        port = stranger.getsockname()[1]
        process = ManagedProcess(
            "api",
            [sys.executable, "-c", "pass"],
            data_dir=tmp_path,
            health_url=f"http://127.0.0.1:{port}/health",
            port=("127.0.0.1", port),
        )
        with pytest.raises(ConfigurationError, match=f"127.0.0.1:{port} is taken"):
            process.start()
    assert not process.pid_path.exists()
