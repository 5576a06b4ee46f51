"""``synapseops up`` / ``down`` / ``status``: the whole local stack (see synapseops.local.stack)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from synapseops.errors import SynapseOpsError
from synapseops.settings import Settings

stderr = Console(stderr=True)

Only = Annotated[
    list[str] | None,
    typer.Option(
        "--only",
        help="Only these parts (repeat or comma-separate): "
        "kafka, postgres, migrate, topics, sandbox, worker, loader, api.",
    ),
]


def command_settings() -> Settings:
    """Settings from the environment, with human-readable logs on stderr (stdout stays data)."""
    settings = Settings()
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(message)s",
        handlers=[RichHandler(console=stderr, show_path=False)],
        force=True,
    )
    # Health probes are HTTP requests; one log line per probe drowns what matters.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return settings


@contextmanager
def reported_errors() -> Iterator[None]:
    """A platform error ends the command with its message and exit status 1, no traceback."""
    try:
        yield
    except SynapseOpsError as exc:
        stderr.print(f"[red]error:[/red] {exc}", markup=True, highlight=False)
        raise typer.Exit(1) from exc


def status_table(rows: list[dict[str, object]]) -> Table:
    table = Table("name", "pid", "healthy")
    for row in rows:
        healthy = "[green]yes[/green]" if row["healthy"] else "[red]no[/red]"
        table.add_row(str(row["name"]), str(row["pid"] or "-"), healthy)
    return table


def up(only: Only = None) -> None:
    """Start the local stack (what is already up is left alone)."""
    from synapseops.local.stack import LocalStack

    with reported_errors():
        rows = LocalStack(command_settings()).up(only)
    Console().print(status_table([row.as_dict() for row in rows]))


def down(only: Only = None) -> None:
    """Stop the local stack in reverse order; nothing of it keeps running."""
    from synapseops.local.stack import LocalStack

    with reported_errors():
        LocalStack(command_settings()).down(only)


def status(
    as_json: Annotated[
        bool, typer.Option("--json", help='Print a JSON list of {"name","pid","healthy"}.')
    ] = False,
) -> None:
    """Show each part of the local stack: pid and health."""
    from synapseops.local.stack import LocalStack

    with reported_errors():
        rows = [row.as_dict() for row in LocalStack(command_settings()).status()]
    if as_json:
        typer.echo(json.dumps(rows))
    else:
        Console().print(status_table(rows))


def register(app: typer.Typer) -> None:
    app.command()(up)
    app.command()(down)
    app.command()(status)
