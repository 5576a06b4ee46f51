"""``synapseops demo``: send sample traffic through the running stack and show what arrived."""

from __future__ import annotations

import httpx
import typer
from rich.console import Console
from rich.table import Table

from synapseops.settings import Settings


def demo(
    rounds: int = typer.Option(3, help="how many times each sample payload is sent"),
    timeout: float = typer.Option(90.0, help="seconds to wait for the rows to arrive"),
) -> None:
    """Send real sample payloads to the ingress, wait for their rows, print where to look."""
    from synapseops.demo import deliveries, load_samples, send, wait_for_rows

    settings = Settings()
    console = Console()
    samples = load_samples()
    sent: set[str] = set()
    with httpx.Client(timeout=10.0) as client:
        for event_id, sample in deliveries(samples, rounds):
            response = send(client, settings.api.url, event_id, sample)
            if response.status_code != 202:
                console.print(f"[red]ingress refused {sample.source}: {response.status_code}")
                console.print(response.text)
                raise typer.Exit(1)
            sent.add(event_id)
        deliveries_made = len(samples) * rounds + 1
        console.print(
            f"sent {deliveries_made} deliveries ({len(sent)} distinct events, 1 duplicate) "
            f"to {settings.api.url}/webhooks/events/<source>"
        )
        rows = wait_for_rows(client, settings, sent, timeout)

    table = Table(title=f"rows in PostgreSQL table inbound_events ({len(rows)}/{len(sent)})")
    for column in ("id", "source", "event_type", "entity_key", "topic", "partition", "offset"):
        table.add_column(column)
    for row in sorted(rows, key=lambda r: int(str(r["id"])))[-12:]:
        table.add_row(
            *(
                str(row.get(c, ""))
                for c in (
                    "id",
                    "source",
                    "event_type",
                    "entity_key",
                    "topic",
                    "partition",
                    "offset",
                )
            )
        )
    console.print(table)
    if len(rows) != len(sent):
        console.print(f"[red]{len(sent) - len(rows)} events did not arrive within {timeout}s")
        raise typer.Exit(1)
    console.print(
        "\n[bold]Where to look[/bold]\n"
        f"  API + OpenAPI      {settings.api.url}/docs   ({settings.api.url}/openapi.json)\n"
        f"  health / metrics   {settings.api.url}/health   {settings.api.url}/metrics\n"
        f"  worker metrics     http://{settings.worker.metrics_host}:"
        f"{settings.worker.metrics_port}/metrics\n"
        f"  stored events      curl -H 'Authorization: Bearer <SYNAPSEOPS_API_TOKEN>' "
        f"{settings.api.url}/api/v1/events\n"
        f"  the table          psql '{_psql_url(settings)}' -c 'select * from inbound_events'\n"
        f"  sandbox            {settings.sandbox.url}/_sandbox/health\n"
        "  processes          .venv/bin/synapseops status      (stop: make down)\n"
        f"  logs               {settings.data_dir}/logs/"
    )


def _psql_url(settings: Settings) -> str:
    if settings.uses_local_database:
        db = settings.database
        return f"postgresql://{db.local_user}@127.0.0.1:{db.local_port}/{db.local_name}"
    return "$SYNAPSEOPS_DATABASE_URL"


def register(app: typer.Typer) -> None:
    app.command()(demo)
