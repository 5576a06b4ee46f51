"""``synapseops kafka ...`` and ``synapseops db ...``: one part of the local runtime at a time."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from synapseops.cli.stack import command_settings, reported_errors, status_table

kafka = typer.Typer(
    no_args_is_help=True,
    help="The project's own Kafka: one KRaft node, or a cluster of several (--brokers 3).",
)
db = typer.Typer(no_args_is_help=True, help="The local PostgreSQL cluster and the migrations.")

Brokers = Annotated[
    int,
    typer.Option(
        "--brokers",
        help="1: one combined broker+controller node; 3 (or 5): a cluster of that many "
        "combined nodes with replication 3 and min.insync.replicas 2, for trying failover.",
    ),
]


@kafka.command("fetch")
def kafka_fetch() -> None:
    """Download the broker's jars from Maven Central (once)."""
    from synapseops.local.kafka_broker import LocalBroker

    with reported_errors():
        libs = LocalBroker(command_settings()).fetch()
    typer.echo(str(libs))


@kafka.command("start")
def kafka_start(brokers: Brokers = 1) -> None:
    """Start the broker (or the cluster) detached and wait until it answers; what runs is
    reused."""
    from synapseops.local.kafka_broker import LocalBroker
    from synapseops.local.kafka_cluster import LocalCluster

    with reported_errors():
        settings = command_settings()
        if brokers == 1:
            broker = LocalBroker(settings)
            broker.start()
            _print_rows([{"name": "kafka", "pid": broker.pid(), "healthy": broker.healthy()}])
            return
        cluster = LocalCluster(settings, brokers)
        cluster.start()
        # The table on stderr: stdout holds the settings a shell sources to use the cluster.
        _print_rows(cluster.status(), stderr=True)
        for name, value in cluster.environment().items():
            typer.echo(f"{name}={value}")


@kafka.command("stop")
def kafka_stop() -> None:
    """Stop the broker of this data folder, and its cluster's nodes (clean shutdowns)."""
    from synapseops.local.kafka_broker import LocalBroker
    from synapseops.local.kafka_cluster import LocalCluster

    with reported_errors():
        settings = command_settings()
        cluster = LocalCluster.recorded(settings)
        if cluster is not None:
            cluster.stop()
        LocalBroker(settings).stop()


@kafka.command("status")
def kafka_status() -> None:
    """The broker of this data folder, or each node of its cluster."""
    from synapseops.local.kafka_broker import LocalBroker
    from synapseops.local.kafka_cluster import LocalCluster

    settings = command_settings()
    broker = LocalBroker(settings)
    rows: list[dict[str, object]] = [
        {"name": "kafka", "pid": broker.pid(), "healthy": broker.healthy()}
    ]
    cluster = LocalCluster.recorded(settings)
    if cluster is not None and broker.pid() is None:
        rows = cluster.status()
    _print_rows(rows)


@db.command("start")
def db_start() -> None:
    """Create (once) and start the local cluster and its database."""
    from synapseops.local.postgres import LocalPostgres

    with reported_errors():
        postgres = LocalPostgres(command_settings())
        postgres.start()
        _print_row("postgres", postgres.pid(), postgres.healthy())


@db.command("stop")
def db_stop() -> None:
    from synapseops.local.postgres import LocalPostgres

    with reported_errors():
        LocalPostgres(command_settings()).stop()


@db.command("remove")
def db_remove() -> None:
    """Stop the local cluster and delete its files (wherever it lives; see the README)."""
    from synapseops.local.postgres import LocalPostgres

    with reported_errors():
        LocalPostgres(command_settings()).remove()


@db.command("migrate")
def db_migrate() -> None:
    """Bring the database schema up to date."""
    from synapseops.local.postgres import LocalPostgres

    with reported_errors():
        LocalPostgres(command_settings()).migrate()


@db.command("url")
def db_url() -> None:
    """Print the database URL the platform uses (for scripts)."""
    typer.echo(command_settings().database_url)


def _print_row(name: str, pid: int | None, healthy: bool) -> None:
    _print_rows([{"name": name, "pid": pid, "healthy": healthy}])


def _print_rows(rows: list[dict[str, object]], *, stderr: bool = False) -> None:
    Console(stderr=stderr).print(status_table(rows))


def register(app: typer.Typer) -> None:
    app.add_typer(kafka, name="kafka")
    app.add_typer(db, name="db")
