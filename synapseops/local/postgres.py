"""The project's own PostgreSQL 15 cluster, used when ``SYNAPSEOPS_DATABASE_URL`` is not set.

The cluster lives in ``{data_dir}/postgres`` (its unix socket too), or, run as root, in a folder
of its own under ``/var/lib/synapseops`` (:mod:`synapseops.local.postgres_home` says why and
where). It listens on 127.0.0.1 only at ``settings.database.local_port`` (15432 by default, so
it never meets a system PostgreSQL on 5432) and trusts the local user
``settings.database.local_user``. initdb and pg_ctl refuse to run as root, so as root they run
as the ``postgres`` OS user, who owns the cluster's folder. The server's log is
``{data_dir}/logs/postgres.log``, opened by this process and handed to pg_ctl as its stdout, so
the postgres OS user never has to reach into the checkout.

With ``SYNAPSEOPS_DATABASE_URL`` set, nothing is started here: :meth:`LocalPostgres.migrate`
only brings that database's schema up to date.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import IO

import psycopg2
from psycopg2 import sql
from sqlalchemy.engine import make_url

from synapseops.errors import ConfigurationError
from synapseops.local.postgres_home import (
    OS_USER,
    SYSTEM_HOME,
    cluster_folder,
    create_home,
    hand_to_os_user,
    home_state,
    remove_cluster_files,
    sweep_orphans,
)
from synapseops.local.processes import cmdline, log_tail, pid_alive, port_in_use, read_pid_file
from synapseops.settings import Settings

log = logging.getLogger(__name__)

FALLBACK_BINDIR = Path("/usr/lib/postgresql/15/bin")
# A unix socket path longer than this (sun_path is 108 bytes) cannot be bound.
_MAX_SOCKET_PATH = 100


def find_bindir() -> Path:
    """The folder with initdb and pg_ctl: ``pg_config --bindir``, else PostgreSQL 15's default."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        result = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        if result.returncode == 0 and result.stdout.strip():
            candidates.append(Path(result.stdout.strip()))
    candidates.append(FALLBACK_BINDIR)
    for bindir in candidates:
        if (bindir / "initdb").exists() and (bindir / "pg_ctl").exists():
            return bindir
    raise ConfigurationError(
        "PostgreSQL server binaries (initdb, pg_ctl) not found; apt-get install postgresql-15, "
        "or set SYNAPSEOPS_DATABASE_URL to a database of your own"
    )


def server_options(settings: Settings, pgdata: Path) -> str:
    """The ``pg_ctl -o`` options: ports and addresses come from Settings on every start."""
    port = settings.database.local_port
    socket_path = pgdata / f".s.PGSQL.{port}"
    # A data folder deep enough to overflow a socket path still works over TCP alone.
    socket_dir = str(pgdata) if len(str(socket_path)) <= _MAX_SOCKET_PATH else ""
    options = [
        "-c listen_addresses=127.0.0.1",
        f"-p {port}",
        f"-c unix_socket_directories={shlex.quote(socket_dir)}",
    ]
    if not settings.database.local_durable:
        # A throwaway cluster (the test session's): no fsync, so its write bursts do not
        # starve the Kafka controller's own fsyncs on a small machine. Never for real data.
        options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
    return " ".join(options)


def _as_os_user(
    argv: list[str], timeout: float, stdout: IO[str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``argv``; as root, as the postgres OS user (initdb and pg_ctl refuse root).

    Its stdout goes to ``stdout`` when given (an open log file), else it is captured.
    """
    if os.geteuid() == 0:
        runuser = shutil.which("runuser") or "/usr/sbin/runuser"
        argv = [runuser, "-u", OS_USER, "--", *argv]
    try:
        return subprocess.run(
            argv,
            stdout=stdout if stdout is not None else subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigurationError(f"cannot run {' '.join(argv[-3:])}: {exc}") from exc


def postmaster_pid(pgdata: Path) -> int | None:
    """The pid of the postmaster serving ``pgdata`` (from its own ``postmaster.pid``), if any."""
    # Read, never removed: a stale postmaster.pid is postgres' own to deal with at start.
    try:
        record = read_pid_file(pgdata / "postmaster.pid")
    except PermissionError:
        return None
    if record is None or not pid_alive(record.pid):
        return None
    # The pid of a crashed postmaster may since belong to some other program.
    return record.pid if "postgres" in " ".join(cmdline(record.pid)) else None


class LocalPostgres:
    def __init__(self, settings: Settings, *, system_home: Path = SYSTEM_HOME) -> None:
        self.settings = settings
        self.pgdata = cluster_folder(
            settings.data_dir, as_root=os.geteuid() == 0, system_home=system_home
        )
        self.log_path = settings.data_dir / "logs" / "postgres.log"

    @property
    def in_data_dir(self) -> bool:
        """False when the cluster lives in a folder of its own under the system home."""
        return self.pgdata.parent.resolve() == self.settings.data_dir.resolve()

    @property
    def enabled(self) -> bool:
        """False when SYNAPSEOPS_DATABASE_URL points elsewhere: nothing to run here."""
        return self.settings.uses_local_database

    @property
    def url(self) -> str:
        return self.settings.database_url

    # -- running the server binaries --------------------------------------------------------

    def _run(
        self, tool: str, *args: str, timeout: float = 120.0, stdout: IO[str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return _as_os_user([str(find_bindir() / tool), *args], timeout, stdout)

    def _hand_to_os_user(self) -> None:
        """As root: the postgres OS user owns the cluster's folder and can reach it."""
        if os.geteuid() != 0:
            return
        hand_to_os_user(self.pgdata)
        if (
            _as_os_user(
                [shutil.which("test") or "/usr/bin/test", "-w", str(self.pgdata)], 10
            ).returncode
            != 0
        ):
            raise ConfigurationError(
                f"the {OS_USER} OS user cannot reach {self.pgdata}: make its parent folders "
                "traversable (chmod o+x) or set SYNAPSEOPS_DATABASE_URL to a database of your own"
            )

    def _own_home(self) -> None:
        """The cluster's own folder exists for this data folder, fresh if the data folder is."""
        home, data_dir = self.pgdata.parent, self.settings.data_dir
        state = home_state(home, data_dir)
        if state == "ours":
            return
        if state == "stale":
            # The data folder was wiped since (its cluster id is gone): so is its database.
            log.warning("replacing the postgres cluster in %s: %s was made anew", home, data_dir)
            self.stop()
            shutil.rmtree(home)
        sweep_orphans(home.parent, running=lambda pgdata: postmaster_pid(pgdata) is not None)
        create_home(home, data_dir)

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def initialized(self) -> bool:
        return (self.pgdata / "PG_VERSION").exists()

    def init(self) -> None:
        """Make the cluster's folder ready to start: initdb once, an existing cluster kept."""
        if not self.in_data_dir:
            self._own_home()
        self.pgdata.mkdir(parents=True, exist_ok=True)
        self.pgdata.chmod(0o700)  # postgres refuses a data folder others can read
        self._hand_to_os_user()
        if self.initialized:
            return
        result = self._run(
            "initdb", "-D", str(self.pgdata), "-U", self.settings.database.local_user,
            "--auth=trust", "--encoding=UTF8", "--locale=C",
        )  # fmt: skip
        if result.returncode != 0:
            raise ConfigurationError(f"initdb failed:\n{(result.stderr or result.stdout)[-2000:]}")
        log.info("created postgres cluster in %s", self.pgdata)

    def pid(self) -> int | None:
        """The postmaster's pid while it runs."""
        return postmaster_pid(self.pgdata)

    def is_running(self) -> bool:
        return self.pid() is not None

    def healthy(self, timeout: int = 2) -> bool:
        """True when the database answers (the local cluster, or SYNAPSEOPS_DATABASE_URL's)."""
        try:
            connection = self._connect(None if self.enabled else self.url, timeout)
        except ConfigurationError:
            return False
        connection.close()
        return True

    def _connect(self, url: str | None = None, timeout: int = 5) -> psycopg2.extensions.connection:
        """A connection to ``url``, by default the local cluster's maintenance database."""
        db = self.settings.database
        target = make_url(url) if url else None
        try:
            if target is None:
                return psycopg2.connect(
                    host="127.0.0.1",
                    port=db.local_port,
                    user=db.local_user,
                    dbname="postgres",
                    connect_timeout=timeout,
                )
            return psycopg2.connect(
                host=target.host,
                port=target.port,
                user=target.username,
                password=target.password,
                dbname=target.database,
                connect_timeout=timeout,
            )
        except psycopg2.Error as exc:
            where = f"{target.host}:{target.port}" if target else f"127.0.0.1:{db.local_port}"
            raise ConfigurationError(f"cannot connect to postgres on {where}: {exc}") from exc

    def start(self, timeout: int = 60) -> int | None:
        """Create (once) and start the cluster, then create the database; idempotent.

        Returns the postmaster's pid, or None when SYNAPSEOPS_DATABASE_URL is set.
        """
        if not self.enabled:
            return None
        if not self.is_running():
            port = self.settings.database.local_port
            if port_in_use("127.0.0.1", port):
                raise ConfigurationError(
                    f"port 127.0.0.1:{port} is taken by another process; stop it or set "
                    "SYNAPSEOPS_DATABASE_LOCAL_PORT (or SYNAPSEOPS_DATABASE_URL)"
                )
            self.init()
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            # Without -l, pg_ctl gives the server its own stdout: this file, opened here.
            with self.log_path.open("a") as server_log:
                result = self._run(
                    "pg_ctl", "-D", str(self.pgdata), "-w", "-t", str(timeout),
                    "-o", server_options(self.settings, self.pgdata), "start",
                    timeout=timeout + 10, stdout=server_log,
                )  # fmt: skip
            if result.returncode != 0:
                raise ConfigurationError(
                    f"postgres did not start ({result.stderr.strip()});"
                    f" the end of {self.log_path}:\n{log_tail(self.log_path)}"
                )
            log.info("started postgres on 127.0.0.1:%d", port)
        self.ensure_database()
        return self.pid()

    def ensure_database(self) -> None:
        name = self.settings.database.local_name
        connection = self._connect()
        connection.autocommit = True  # CREATE DATABASE cannot run inside a transaction
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if cursor.fetchone() is None:
                    cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                    log.info("created database %s", name)
        except psycopg2.Error as exc:
            raise ConfigurationError(f"cannot create database {name}: {exc}") from exc
        finally:
            connection.close()

    def stop(self, timeout: int = 30) -> None:
        """A fast shutdown (sessions end, data is flushed); immediate only if that hangs."""
        if not self.enabled or not self.is_running():
            return
        result = self._run(
            "pg_ctl", "-D", str(self.pgdata), "-m", "fast", "-w", "-t", str(timeout), "stop",
            timeout=timeout + 10,
        )  # fmt: skip
        if result.returncode != 0 and self.is_running():
            log.warning("postgres did not stop in time; immediate shutdown")
            self._run("pg_ctl", "-D", str(self.pgdata), "-m", "immediate", "-w", "stop")
        log.info("stopped postgres")

    def remove(self) -> None:
        """Stop the cluster and delete its files (``make clean-data``); idempotent."""
        if not self.enabled:
            return
        self.stop()
        remove_cluster_files(self.pgdata, self.settings.data_dir)
        log.info("removed the postgres cluster in %s", self.pgdata)

    def migrate(self) -> None:
        """Bring the schema of ``settings.database_url`` up to date (Alembic, in sinks)."""
        try:
            from sinks.migrate import upgrade
        except ImportError as exc:
            raise ConfigurationError(f"the migrations cannot be loaded: {exc}") from exc
        upgrade(self.settings.database_url)
