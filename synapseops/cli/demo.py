"""``synapseops demo`` (a burst of sample traffic, what arrived, where to look) and
``synapseops traffic`` (steady sample traffic until stopped; ``demo`` starts it in the
background, ``synapseops down`` stops it). The senders are the sandbox's
(:mod:`sandbox.traffic`); this module only drives them and shows what arrived."""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Callable
from typing import Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from synapseops.settings import Settings


def _wait(check: Callable[[], int], want: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    got = check()
    while got < want and time.monotonic() < deadline:
        time.sleep(0.5)
        got = check()
    return got


def demo(
    rounds: int = typer.Option(2, help="how many times each generic sample is sent"),
    payments: int = typer.Option(5, help="Stripe payments to send"),
    orders: int = typer.Option(5, help="Shopify orders to send through the demo flow"),
    timeout: float = typer.Option(120.0, help="seconds to wait for the effects"),
    traffic: bool = typer.Option(True, help="start steady sample traffic in the background"),
) -> None:
    """Send real sample payloads to three services, wait for their effects, print where to look."""
    from sandbox.traffic import (
        DEMO_CONSOLE_USERS,
        DemoClient,
        StripeAmounts,
        generic_deliveries,
        load_samples,
        order_numbers,
    )

    settings = Settings()
    console = Console()
    rng = random.Random()
    with httpx.Client(timeout=15.0) as http:
        client = DemoClient(settings, http)
        client.ensure_flow()
        client.ensure_notifications()

        client.crm.ensure_pair()  # Salesforce Lead ⇄ HubSpot Contact on the sandbox
        people = {client.crm.create(side, rng) for side in ("salesforce", "hubspot") * 2}
        event_ids: set[str] = set()
        for event_id, sample in generic_deliveries(load_samples(), rounds):
            _accepted(client.send_generic(event_id, sample), console)
            event_ids.add(event_id)
        paid: set[str] = set()
        amounts = StripeAmounts(rng)  # the first is large: an approval in the inbox at once
        for _ in range(payments):
            payment, body = client.stripe_event(amounts.next())
            _accepted(client.send_stripe(body), console)
            paid.add(payment)
        numbers = set(itertools.islice(order_numbers(), orders))
        for number in numbers:
            _accepted(client.send_shopify(client.shopify_order(number), f"demo-{number}"), console)
        console.print(
            f"sent {len(event_ids)} generic events (+1 duplicate), {len(paid)} Stripe payments, "
            f"{len(numbers)} Shopify orders"
        )
        from sandbox.github_traffic import AggregationDemo

        aggregation = AggregationDemo(settings, http)
        aggregation.ensure_sources()
        aggregation.add_github_events(3)
        for _ in range(5):
            _accepted(aggregation.send_logs(), console)
        console.print("declared demo-github (polled) and demo-logs (OTLP), sent 5 OTLP exports")
        stored = _wait(lambda: len(client.stored_events(event_ids)), len(event_ids), timeout)
        settled = _wait(lambda: len(client.settlements(paid)), len(paid), timeout)
        delivered = _wait(lambda: len(client.erp_orders(numbers)), len(numbers), timeout)
        synced = _wait(lambda: len(client.crm.synced(people)), len(people), timeout)
        _show(console, client, event_ids, paid, numbers)
        loaded = _wait(lambda: _warehouse(console, aggregation, False), 2, timeout)
        _warehouse(console, aggregation, True)

        console.print(
            f"CRM: {synced} of {len(people)} people made on Salesforce or HubSpot are on both "
            "(crm-sync pipeline; /api/v1/crm/records)"
        )

    if traffic:
        from synapseops.local.stack import LocalStack

        LocalStack(settings).up(only=("traffic",))
    _where(console, settings, traffic)
    from synapseops.cli.users import ensure_demo_users

    logins = ensure_demo_users(settings, DEMO_CONSOLE_USERS)
    console.print(f"\n[bold]Console[/bold]  {settings.api.url}/   (dev logins:)")
    for name, role, password in logins:
        console.print(f"  {role:<9} user [bold]{name}[/bold]  password [bold]{password}[/bold]")
    missing = (len(event_ids) - stored) + (len(paid) - settled) + (len(numbers) - delivered)
    missing += 2 - loaded  # demo-github and demo-logs must reach the warehouse

    missing += len(people) - synced
    if missing:
        console.print(f"[red]{missing} effects did not arrive within {timeout:.0f}s")
        raise typer.Exit(1)


def _warehouse(console: Console, aggregation: Any, show: bool) -> int:
    """How many of the demo's two sources have rows in warehouse.events (shown if asked)."""
    health = aggregation.health()
    if show:
        table = Table(title="warehouse.events per source (aggregation-transform → loader)")
        for column in ("source", "events", "p50_s", "p99_s", "errors", "flagged"):
            table.add_column(column)
        for row in health:
            table.add_row(*(str(row.get(c)) for c in ("source", "events", "p50_s", "p99_s",
                                                       "errors", "flagged")))  # fmt: skip
        console.print(table)
    return sum(1 for row in health if row["source"] in ("demo-github", "demo-logs"))


def _accepted(response: httpx.Response, console: Console) -> None:
    if response.status_code >= 300:
        console.print(f"[red]{response.request.url} answered {response.status_code}")
        console.print(response.text)
        raise typer.Exit(1)


def _show(
    console: Console, client: Any, event_ids: set[str], paid: set[str], numbers: set[int]
) -> None:
    events = Table(title="PostgreSQL inbound_events (event-log pipeline)")
    for column in ("id", "source", "event_type", "topic", "partition", "offset"):
        events.add_column(column)
    for row in sorted(client.stored_events(event_ids), key=lambda r: int(r["id"]))[-8:]:
        events.add_row(*(str(row.get(c, "")) for c in ("id", "source", "event_type", "topic",
                                                       "partition", "offset")))  # fmt: skip
    console.print(events)
    money = Table(title="settlements (payment-settlement pipeline → sandbox finance ledger)")
    for column in ("settlement_id", "state", "amount", "currency", "finance_reference"):
        money.add_column(column)
    for row in client.settlements(paid):
        money.add_row(*(str(row.get(c, "")) for c in ("settlement_id", "state", "amount",
                                                     "currency", "finance_reference")))  # fmt: skip
    console.print(money)
    erp = Table(
        title="sandbox ERP orders (integration-delivery pipeline, demo-shopify-orders flow)"
    )
    for column in ("external_id", "source_order_id", "total", "currency"):
        erp.add_column(column)
    for order in client.erp_orders(numbers):
        total = str(order.get("totals", {}).get("total"))
        erp.add_row(
            order["external_id"], str(order.get("source_order_id")), total, str(order["currency"])
        )
    console.print(erp)


def _where(console: Console, settings: Settings, traffic: bool) -> None:
    api, token = settings.api.url, "$SYNAPSEOPS_API_TOKEN (dev: dev-token-change-me)"
    console.print(
        "\n[bold]Where to look[/bold]\n"
        f"  API docs           {api}/docs   (OpenAPI: {api}/openapi.json)\n"
        f"  health / metrics   {api}/health   {api}/metrics   worker: http://"
        f"{settings.worker.metrics_host}:{settings.worker.metrics_port}/metrics\n"
        f"  management API     curl -H 'Authorization: Bearer {token}' {api}/api/v1/events\n"
        f"                     ... /api/v1/settlements  /api/v1/runs  /api/v1/flows/summary"
        "  /api/v1/dead-letters\n"
        f"  the tables         psql '{_psql_url(settings)}' -c 'select * from inbound_events'\n"
        "                     warehouse: select source, count(*) from warehouse.events group by 1\n"
        "                     (also settlements, runs, dead_letters)\n"
        f"  sandbox            {settings.sandbox.url}/_sandbox/finance/ledger   "
        f"{settings.sandbox.url}/erp/api/orders\n"
        "  processes          .venv/bin/synapseops status      (stop all: make down)\n"
        f"  logs               {settings.data_dir}/logs/\n"
        + (
            "  traffic            steady sample traffic is flowing (synapseops status: traffic)"
            if traffic
            else ""
        )  # fmt: skip
    )


def _psql_url(settings: Settings) -> str:
    if settings.uses_local_database:
        db = settings.database
        return f"postgresql://{db.local_user}@127.0.0.1:{db.local_port}/{db.local_name}"
    return "$SYNAPSEOPS_DATABASE_URL"


def traffic(
    rate: float = typer.Option(1.0, help="deliveries per second"),
) -> None:
    """Send sample traffic to the running API until stopped (SIGTERM / Ctrl-C)."""
    from sandbox.traffic import run_traffic

    run_traffic(Settings(), rate)


def register(app: typer.Typer) -> None:
    app.command()(demo)
    app.command()(traffic)
