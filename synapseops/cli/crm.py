"""``synapseops crm sync MAPPING``: a manual full sync from the shell, dry run first.

The same full syncs as ``POST /api/v1/crm/mappings/{id}/full-syncs``, queued directly in
PostgreSQL and run by a worker (no API process needed): the dry run's diff (would create /
update / hold / skip, with samples) is printed, then — unless ``--dry-run`` — the run after a
confirmation (``--yes`` skips it), with a progress bar (done / total, rate, time left).
"""

from __future__ import annotations

import getpass
import time
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from synapseops.settings import Settings

crm_app = typer.Typer(no_args_is_help=True, help="CRM Automation: full syncs of a mapping.")
POLL_S = 0.5


def _mapping_id(engine: Any, mapping: str) -> int:
    from sinks.crm import store

    for row in store.list_mappings(engine):
        if str(row["id"]) == mapping or row["name"] == mapping:
            return int(row["id"])
    raise typer.BadParameter(f"no CRM mapping named or numbered {mapping!r}")


def _wait(engine: Any, sync_id: int, console: Console, bar: bool) -> dict[str, Any]:
    from sinks.crm import full_syncs

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeRemainingColumn(), console=console, disable=not bar) as progress:
        task = progress.add_task("planning", total=None)
        while True:
            row = full_syncs.get(engine, sync_id)
            if row["total"]:
                progress.update(
                    task, description="syncing", total=row["total"], completed=row["done"]
                )
            if row["status"] in ("done", "failed", "cancelled"):
                return row
            time.sleep(POLL_S)


def _show(console: Console, row: dict[str, Any]) -> None:
    table = Table(title=f"full sync {row['id']} ({'dry run' if row['dry_run'] else 'run'})")
    for column in ("would", "pairs", "samples (salesforce / hubspot: what)"):
        table.add_column(column)
    for kind, count in sorted(row["planned"].items()):
        shown = [
            f"{s.get('salesforce')} / {s.get('hubspot')}: {s.get('writes') or s.get('reason')}"
            for s in row["samples"].get(kind, [])[:3]
        ]
        table.add_row(kind, str(count), "\n".join(shown))
    console.print(table)


@crm_app.command("sync")
def sync(
    mapping: Annotated[str, typer.Argument(help="the mapping's name or id")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="only the diff")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="run without asking")] = False,
) -> None:
    """Diff a mapping's two sides, then reconcile every drifted pair."""
    from sinks.crm import full_syncs
    from sinks.db import make_engine

    console = Console()
    engine = make_engine(Settings())
    who = f"cli:{getpass.getuser()}"
    mapping_id = _mapping_id(engine, mapping)
    planned = _wait(
        engine, int(full_syncs.request(engine, mapping_id, True, who)["id"]), console, False
    )
    _show(console, planned)
    if planned["status"] != "done":
        console.print(f"[red]the dry run {planned['status']}: {planned.get('error') or ''}")
        raise typer.Exit(1)
    acting = sum(n for k, n in planned["planned"].items() if k in ("create", "update", "conflict"))
    if dry_run or not acting:
        console.print("nothing to do" if not acting else "dry run: nothing was written")
        return
    if not yes and not typer.confirm(f"reconcile {acting} pairs now?"):
        raise typer.Exit(1)
    row = _wait(
        engine, int(full_syncs.request(engine, mapping_id, False, who)["id"]), console, True
    )
    console.print(
        f"full sync {row['id']} {row['status']}: {row['done']} of {row['total']} pairs "
        f"handled, {row['outcomes']}"
    )
    if row["status"] != "done":
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(crm_app, name="crm")
