"""``synapseops kafka ...`` and ``synapseops db ...``: one part of the local runtime at a time."""

from __future__ import annotations

import typer
from rich.console import Console

from synapseops.cli.stack import command_settings, reported_errors, status_table

kafka = typer.Typer(no_args_is_help=True, help="The project's own Kafka broker (KRaft, one node).")
db = typer.Typer(no_args_is_help=True, help="The local PostgreSQL cluster and the migrations.")


@kafka.command("fetch")
def kafka_fetch() -> None:
    """Download the broker's jars from Maven Central (once)."""
    from synapseops.local.kafka_broker import LocalBroker

    with reported_errors():
        libs = LocalBroker(command_settings()).fetch()
    typer.echo(str(libs))


@kafka.command("start")
def kafka_start() -> None:
    """Start the broker detached and wait until it answers (a running broker is reused)."""
    from synapseops.local.kafka_broker import LocalBroker

    with reported_errors():
        broker = LocalBroker(command_settings())
        broker.start()
        _print_row("kafka", broker.pid(), broker.healthy())


@kafka.command("stop")
def kafka_stop() -> None:
    """Stop the broker of this data folder (a clean shutdown)."""
    from synapseops.local.kafka_broker import LocalBroker

    with reported_errors():
        LocalBroker(command_settings()).stop()


@kafka.command("status")
def kafka_status() -> None:
    from synapseops.local.kafka_broker import LocalBroker

    broker = LocalBroker(command_settings())
    _print_row("kafka", broker.pid(), broker.healthy())


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
    Console().print(status_table([{"name": name, "pid": pid, "healthy": healthy}]))


def register(app: typer.Typer) -> None:
    app.add_typer(kafka, name="kafka")
    app.add_typer(db, name="db")
