"""``synapseops topics apply`` / ``synapseops topics list``: the registry against the broker.

``apply`` exits 1 while a declared topic still differs from the broker after the run (so CI
and ``make demo`` notice), 2 when the broker cannot be reached or cannot hold the declared
replication factor. Replication-factor drift is reported with how to fix it, never changed.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from synapseops.errors import ConfigurationError, KafkaUnavailable
from synapseops.settings import Settings

console = Console()
err_console = Console(stderr=True)


def apply(
    grow: Annotated[
        bool, typer.Option("--grow", help="Add partitions to topics with fewer than declared.")
    ] = False,
    fix_configs: Annotated[
        bool,
        typer.Option("--fix-configs", help="Set configs that differ back to the declared value."),
    ] = False,
) -> None:
    """Create missing topics; report drift (grow / fix only when asked); never delete."""
    from topics.admin import apply_topics

    settings = Settings()
    try:
        report = apply_topics(settings, grow=grow, fix_configs=fix_configs)
    except KafkaUnavailable as exc:
        err_console.print(f"[red]broker {settings.kafka.bootstrap} unavailable:[/] {exc}")
        raise typer.Exit(2) from exc
    except ConfigurationError as exc:
        err_console.print(f"[red]cannot create the topics:[/] {exc}")
        raise typer.Exit(2) from exc
    for name in report.created:
        console.print(f"[green]created[/]   {name}")
    for name in report.grown:
        console.print(f"[green]grown[/]     {name}")
    for name in report.configs_fixed:
        console.print(f"[green]fixed[/]     {name} (configs)")
    console.print(f"[green]in sync[/]   {len(report.in_sync)} topic(s)")
    for drift in report.drift:
        for line in drift.describe():
            console.print(f"[yellow]drift[/]     {drift.name}: {line}")
    if report.drift:
        hints = []
        if any(d.partitions_short for d in report.drift) and not grow:
            hints.append("--grow adds the missing partitions")
        if any(d.configs for d in report.drift) and not fix_configs:
            hints.append("--fix-configs sets the declared configs (min.insync.replicas too)")
        if any(d.replication_differs for d in report.drift):
            hints.append("replication factor: see the drift line (a reassignment, by hand)")
        if hints:
            console.print("hint: " + "; ".join(hints))
        raise typer.Exit(1)


def list_(
    extra: Annotated[
        bool, typer.Option(help="Show undeclared topics in the registry's namespaces.")
    ] = True,
) -> None:
    """Declared vs actual topics: partitions, config drift, missing and extra."""
    from topics.admin import list_topics

    settings = Settings()
    try:
        rows = list_topics(settings, include_extra=extra)
    except KafkaUnavailable as exc:
        err_console.print(f"[red]broker {settings.kafka.bootstrap} unavailable:[/] {exc}")
        raise typer.Exit(2) from exc
    table = Table(title=f"topics on {settings.kafka.bootstrap}")
    table.add_column("topic", overflow="fold")
    for column in ("status", "declared", "actual", "drift"):
        table.add_column(column)
    colours = {"in_sync": "green", "drift": "yellow", "missing": "red", "extra": "magenta"}
    for row in rows:
        drift = "\n".join(row.drift.describe()) if row.drift else ""
        table.add_row(
            row.name,
            f"[{colours[row.status]}]{row.status}[/]",
            "" if row.declared_partitions is None else str(row.declared_partitions),
            "" if row.actual_partitions is None else str(row.actual_partitions),
            drift,
        )
    console.print(table)


def register(app: typer.Typer) -> None:
    group = typer.Typer(no_args_is_help=True, help="The topic registry against the broker.")
    group.command("apply")(apply)
    group.command("list")(list_)
    app.add_typer(group, name="topics")
