"""The project's own PostgreSQL cluster, started from a checkout in a private (0700) folder.

Run as root, initdb and pg_ctl run as the ``postgres`` OS user, who cannot enter such a folder:
the cluster must live where that user can reach it, keep its data across a restart, log into
the checkout's ``logs/postgres.log``, start empty once the data folder was wiped, and be gone
after ``synapseops db remove``. Run as a normal user the cluster sits in the data folder and
the same test holds.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import psycopg2
import pytest

from synapseops.local.postgres import LocalPostgres
from synapseops.local.postgres_home import OS_USER, OWNER_FILE
from synapseops.settings import DatabaseSettings, Settings


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def rows(postgres: LocalPostgres) -> list[tuple[str]]:
    db = postgres.settings.database
    connection = psycopg2.connect(
        host="127.0.0.1", port=db.local_port, user=db.local_user, dbname=db.local_name
    )
    try:
        with connection, connection.cursor() as cursor:
            cursor.execute("CREATE TABLE IF NOT EXISTS kept (note text)")
            cursor.execute("INSERT INTO kept VALUES ('written')")
            cursor.execute("SELECT note FROM kept")
            return list(cursor.fetchall())
    finally:
        connection.close()


@pytest.fixture
def private_checkout(tmp_path: Path) -> Path:
    folder = tmp_path / "private"
    folder.mkdir()
    folder.chmod(0o700)  # what mktemp -d makes
    return folder / "p" / ".data"


def test_the_cluster_of_a_checkout_in_a_private_folder_starts_restarts_and_goes(
    private_checkout: Path,
) -> None:
    port = free_port()
    settings = Settings(
        data_dir=private_checkout,
        database=DatabaseSettings(local_port=port, local_durable=False, url=None),
    )
    postgres = LocalPostgres(settings)
    try:
        assert postgres.start() is not None and postgres.healthy()
        assert rows(postgres) == [("written",)]
        if os.geteuid() == 0:
            home = postgres.pgdata.parent
            assert not postgres.pgdata.is_relative_to(private_checkout.parent)
            assert home.owner() == OS_USER and (home.stat().st_mode & 0o777) == 0o700
            owner = (home / OWNER_FILE).read_text().splitlines()[0]
            assert owner == str(private_checkout.resolve())
        assert "ready to accept connections" in (private_checkout / "logs/postgres.log").read_text()

        postgres.stop()
        assert not postgres.is_running()
        again = LocalPostgres(settings)  # a later command finds the same cluster
        assert again.pgdata == postgres.pgdata
        assert again.start() is not None
        assert rows(again) == [("written",), ("written",)]

        again.stop()
        shutil.rmtree(private_checkout)  # rm -rf .data: the next stack starts from nothing
        assert LocalPostgres(settings).start() is not None
        assert rows(postgres) == [("written",)]
    finally:
        # What `make clean-data` runs: the real command line, in a process of its own.
        env = {
            **os.environ,
            "SYNAPSEOPS_DATA_DIR": str(private_checkout),
            "SYNAPSEOPS_DATABASE_LOCAL_PORT": str(port),
        }
        env.pop("SYNAPSEOPS_DATABASE_URL", None)
        removed = subprocess.run(
            [sys.executable, "-m", "synapseops.cli", "db", "remove"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert removed.returncode == 0, removed.stderr
    assert not postgres.is_running()
    assert not postgres.pgdata.exists()
    if os.geteuid() == 0:
        assert not postgres.pgdata.parent.exists()
