"""``synapseops up`` twice, then ``down``, on a stack of its own (tmp data folder, other ports):
the second ``up`` starts nothing twice, and ``down`` leaves no process of that stack behind.

Every process the stack starts inherits ``SYNAPSEOPS_DATA_DIR=<that folder>`` (the broker, the
postmaster and its children, the Python processes), so "a process of this stack" is found by its
environment, independently of the pid files the code under test writes.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.harness import free_port
from synapseops.local.kafka_broker import LocalBroker
from synapseops.local.processes import cmdline, pid_alive
from synapseops.settings import Settings

SYNAPSEOPS = Path(sys.executable).with_name("synapseops")


def free_ports() -> dict[str, str]:
    """Ports the OS says are free now, so a stack left over elsewhere cannot collide."""
    kafka, controller, postgres, api, sandbox, smtp, worker, loader = (
        free_port() for _ in range(8)
    )
    return {
        "SYNAPSEOPS_KAFKA_BOOTSTRAP": f"127.0.0.1:{kafka}",
        "SYNAPSEOPS_KAFKA_CONTROLLER_PORT": str(controller),
        "SYNAPSEOPS_KAFKA_HEAP": "384m",
        "SYNAPSEOPS_DATABASE_LOCAL_PORT": str(postgres),
        "SYNAPSEOPS_API_PORT": str(api),
        "SYNAPSEOPS_SANDBOX_PORT": str(sandbox),
        "SYNAPSEOPS_SANDBOX_SMTP_PORT": str(smtp),
        "SYNAPSEOPS_WORKER_METRICS_PORT": str(worker),
        "SYNAPSEOPS_LOADER_METRICS_PORT": str(loader),
    }


PORTS = free_ports()
STEPS = ["kafka", "postgres", "migrate", "topics", "sandbox", "worker", "loader", "api"]


def stack_pids(data_dir: Path) -> set[int]:
    """Every live process whose environment says it belongs to the stack in ``data_dir``."""
    marker = f"SYNAPSEOPS_DATA_DIR={data_dir}".encode()
    pids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if marker in environ and pid_alive(int(entry.name)):
            pids.add(int(entry.name))
    return pids


@pytest.fixture
def stack_env(settings: Settings) -> Iterator[dict[str, str]]:
    # Not under pytest's tmp_path: that is private to root, and the postmaster runs as postgres.
    data_dir = Path(tempfile.mkdtemp(prefix="synapseops-stack-", dir="/tmp"))
    data_dir.chmod(0o755)
    # The broker's jars come from the developer's cache (fetched here if it is empty).
    LocalBroker(settings).fetch()
    (data_dir / "cache").symlink_to(settings.data_dir / "cache")
    env = {k: v for k, v in os.environ.items() if k != "SYNAPSEOPS_DATABASE_URL"}
    env.update(PORTS, SYNAPSEOPS_DATA_DIR=str(data_dir))
    yield env
    subprocess.run([SYNAPSEOPS, "down"], env=env, capture_output=True, timeout=120)
    # As root the cluster lives outside the data folder: delete it as make clean-data does.
    subprocess.run([SYNAPSEOPS, "db", "remove"], env=env, capture_output=True, timeout=120)
    for pid in stack_pids(data_dir):  # only if `down` failed the test already
        os.kill(pid, signal.SIGKILL)
    shutil.rmtree(data_dir, ignore_errors=True)


def synapseops(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [SYNAPSEOPS, *args], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, f"synapseops {' '.join(args)}:\n{result.stderr[-4000:]}"
    return result.stdout


def status(env: dict[str, str]) -> dict[str, dict[str, object]]:
    rows = json.loads(synapseops(env, "status", "--json"))
    assert all(set(row) == {"name", "pid", "healthy"} for row in rows)
    return {str(row["name"]): row for row in rows}


def test_up_twice_keeps_one_stack_and_down_leaves_nothing(stack_env: dict[str, str]) -> None:
    data_dir = Path(stack_env["SYNAPSEOPS_DATA_DIR"])
    steps = STEPS
    only = ["--only", ",".join(steps)]
    running = [step for step in steps if step not in ("migrate", "topics")]

    synapseops(stack_env, "up", *only)
    first = status(stack_env)
    for name in running:
        assert first[name]["pid"], f"{name} has no pid after up: {first}"
    assert first["kafka"]["healthy"] and first["postgres"]["healthy"]

    synapseops(stack_env, "up", *only)
    second = status(stack_env)
    assert {name: second[name]["pid"] for name in running} == {
        name: first[name]["pid"] for name in running
    }
    brokers = [
        pid
        for pid in stack_pids(data_dir)
        if "kafka.Kafka" in cmdline(pid) and str(data_dir) in " ".join(cmdline(pid))
    ]
    assert brokers == [first["kafka"]["pid"]]

    synapseops(stack_env, "down")
    after = status(stack_env)
    assert all(row["pid"] is None for row in after.values()), after
    for name in running:
        assert not pid_alive(int(str(first[name]["pid"])))
    assert stack_pids(data_dir) == set()
    ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    assert str(data_dir) not in ps
