"""``synapseops tokens create|list|revoke``: named API tokens with roles, from the shell.

The same store as ``/api/v1/tokens`` (:mod:`sinks.principals.store`), run directly against
PostgreSQL: no API process or admin token needed, so it is also how the first named tokens
come to exist. ``create`` prints the token once, alone on stdout (``--json``: one object);
the store keeps only its digest.
"""

from __future__ import annotations

import getpass
import json
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from synapseops.principals import NAME_PATTERN, Role
from synapseops.settings import Settings

tokens_app = typer.Typer(no_args_is_help=True, help="Named API tokens with roles.")

_COLUMNS = (
    "token_id",
    "name",
    "roles",
    "created_at",
    "created_by",
    "expires_at",
    "last_used_at",
    "revoked_at",
)


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {
        ("id" if key == "token_id" else key): value.isoformat()
        if isinstance(value, datetime)
        else value
        for key, value in row.items()
        if key not in {"id", "kind", "secret_hash"}
    }


def _engine() -> Any:
    from sinks.db import make_engine

    return make_engine(Settings())


def _fail(exc: Exception) -> typer.Exit:
    Console(stderr=True).print(f"[red]error:[/red] {exc}")
    return typer.Exit(1)


@tokens_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="unique among live tokens, e.g. ci-deploy")],
    roles: Annotated[
        list[Role], typer.Option("--role", help="viewer, operator, approver or admin (repeat)")
    ],
    expires_in_days: Annotated[
        int | None, typer.Option(min=1, help="expire after this many days (default: never)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the new token as JSON")] = False,
) -> None:
    """Create a token; prints it once (store it now: it cannot be shown again)."""
    from sinks.principals.store import create_token
    from synapseops.errors import DatabaseUnavailable, RecordConflict

    if not re.match(NAME_PATTERN, name):
        raise typer.BadParameter(f"name must match {NAME_PATTERN}")
    expires = datetime.now(UTC) + timedelta(days=expires_in_days) if expires_in_days else None
    engine = _engine()
    try:
        row, minted = create_token(
            engine, name=name, roles=roles, created_by=_actor(), expires_at=expires
        )
    except (RecordConflict, DatabaseUnavailable) as exc:
        raise _fail(exc) from None
    finally:
        engine.dispose()
    if as_json:
        typer.echo(json.dumps({**_jsonable(row), "token": minted.token}))
        return
    Console(stderr=True).print(
        f"token [bold]{name}[/bold] ({', '.join(row['roles'])}), id {row['token_id']}; "
        "shown once, store it now:"
    )
    typer.echo(minted.token)


@tokens_app.command("list")
def list_(
    include_revoked: Annotated[bool, typer.Option("--all", help="revoked ones too")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print a JSON list")] = False,
) -> None:
    """The named tokens (never their secrets)."""
    from sinks.principals.store import list_tokens
    from synapseops.errors import DatabaseUnavailable

    engine = _engine()
    try:
        rows = list_tokens(engine, include_revoked=include_revoked)
    except DatabaseUnavailable as exc:
        raise _fail(exc) from None
    finally:
        engine.dispose()
    _print_rows(rows, _COLUMNS, "API tokens", as_json=as_json, jsonable=_jsonable)


def _print_rows(
    rows: list[dict[str, Any]],
    columns: Sequence[str],
    title: str,
    *,
    as_json: bool,
    jsonable: Callable[[dict[str, Any]], dict[str, Any]],
) -> None:
    """Principals' rows as a JSON list or a table of ``columns`` (roles comma-joined); the
    ``users`` commands print theirs the same way."""
    if as_json:
        typer.echo(json.dumps([jsonable(row) for row in rows]))
        return
    table = Table(*columns, title=title)
    for row in rows:
        values = {**row, "roles": ",".join(row["roles"])}
        table.add_row(*(str(values[c]) if values[c] is not None else "" for c in columns))
    Console().print(table)


@tokens_app.command("revoke")
def revoke(
    token: Annotated[str, typer.Argument(help="the token's id or its name")],
) -> None:
    """Revoke a live token at once (the row stays for the audit trail)."""
    from sinks.principals.store import revoke_token
    from synapseops.errors import DatabaseUnavailable, RecordNotFound

    engine = _engine()
    try:
        row = revoke_token(engine, token, by=_actor())
    except (RecordNotFound, DatabaseUnavailable) as exc:
        raise _fail(exc) from None
    finally:
        engine.dispose()
    Console(stderr=True).print(f"revoked token {row['name']} (id {row['token_id']})")


def register(app: typer.Typer) -> None:
    app.add_typer(tokens_app, name="tokens")
