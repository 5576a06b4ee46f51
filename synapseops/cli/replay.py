"""``synapseops replay``: send dead letters back into their pipelines from the shell.

The same :mod:`sinks.dead_letters.replay` logic as ``POST /api/v1/dead-letters/replay``, run
directly against PostgreSQL and Kafka (no API process needed). A big replay shows a progress bar.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from synapseops.logging import configure_logging
from synapseops.settings import Settings

# Below this many records a bar only flickers; the summary line says enough.
PROGRESS_MIN_RECORDS = 20


def parse_time(text: str | None) -> datetime | None:
    """ISO 8601 (``2025-01-31``, ``2025-01-31T12:00:00Z``); without a zone it is UTC."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise typer.BadParameter(f"not an ISO 8601 time: {text!r}") from exc
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class _Bar:
    """A rich progress bar that appears on the first report of a big enough replay."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress: Progress | None = None
        self.task: Any = None

    def __call__(self, done: int, total: int) -> None:
        if total < PROGRESS_MIN_RECORDS:
            return
        if self.progress is None:
            self.progress = Progress(
                TextColumn("replaying"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=self.console,
            )
            self.progress.start()
            self.task = self.progress.add_task("replay", total=total)
        self.progress.update(self.task, completed=done)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()


def replay(
    ids: Annotated[
        list[int] | None, typer.Option("--id", help="a dead letter id (repeatable)")
    ] = None,
    pipeline: Annotated[str | None, typer.Option(help="only this pipeline's dead letters")] = None,
    error_class: Annotated[str | None, typer.Option(help="only this error class")] = None,
    since: Annotated[
        str | None, typer.Option(help="dead at or after (ISO 8601, UTC if no zone)")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="dead before (ISO 8601, UTC if no zone)")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="only count what would be replayed")
    ] = False,
    rate: Annotated[float, typer.Option(min=0.001, help="records per second at most")] = 100.0,
    idempotency_key: Annotated[
        str | None,
        typer.Option(
            help="repeating a replay with the same key and filter sends nothing new "
            "(and takes over one whose process died)"
        ),
    ] = None,
    replay_all: Annotated[bool, typer.Option("--all", help="no filter: every dead letter")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
) -> None:
    """Replay dead letters (status ``dead``) matching every given filter."""
    from sinks.dead_letters.replay import DeadLetterFilter
    from synapseops.errors import EmptyFilter, ReplayInProgress, ReplayKeyReused, ReplayLeaseLost

    settings = Settings()
    configure_logging("replay", "WARNING")
    try:
        criteria = DeadLetterFilter(
            ids=ids or None,
            pipeline=pipeline,
            error_class=error_class,
            since=parse_time(since),
            until=parse_time(until),
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    console = Console(stderr=as_json)
    try:
        result = asyncio.run(
            _run(settings, criteria, dry_run, rate, idempotency_key, replay_all, console)
        )
    except EmptyFilter as exc:
        console.print("[red]give at least one filter (--id, --pipeline, ...) or --all")
        raise typer.Exit(2) from exc
    except ReplayKeyReused as exc:
        console.print(f"[red]{exc}")
        raise typer.Exit(2) from exc
    except ReplayInProgress as exc:
        console.print(f"[red]{exc}; if its process died, repeat in {exc.retry_after_s:.0f}s")
        raise typer.Exit(1) from exc
    except ReplayLeaseLost as exc:
        console.print(f"[red]{exc}")
        raise typer.Exit(1) from exc
    if as_json:
        typer.echo(json.dumps({**result, "dry_run": dry_run}))
    elif dry_run:
        console.print(f"{result['matched']} dead letter(s) match; nothing sent (dry run)")
    else:
        console.print(
            f"replay {result['replay_id']}: {result['replayed']} of {result['matched']} "
            "matching dead letter(s) sent back into their pipelines"
        )


async def _run(
    settings: Settings,
    criteria: Any,
    dry_run: bool,
    rate: float,
    idempotency_key: str | None,
    replay_all: bool,
    console: Console,
) -> dict[str, Any]:
    from sinks.db import make_engine
    from sinks.dead_letters.replay import DeadLetterReplay, pipelines_for
    from synapseops.kafka import AsyncProducer

    engine = make_engine(settings)
    producer = None if dry_run else AsyncProducer(settings.kafka)
    bar = _Bar(console)
    try:
        replayer = DeadLetterReplay(engine, pipelines_for(settings.retry.delays), settings.replay)
        result = await replayer.replay(
            criteria,
            dry_run=dry_run,
            rate_per_s=rate,
            idempotency_key=idempotency_key,
            requested_by="cli",
            producer=producer,
            progress=bar,
            allow_all=replay_all,
        )
    finally:
        bar.close()
        if producer is not None:
            await asyncio.to_thread(producer.close)
        engine.dispose()
    return result.as_json()


def register(app: typer.Typer) -> None:
    app.command()(replay)
