"""``synapseops users create|list|disable|passwd``: the people of the web console, from the shell.

The same store as the console's login (:mod:`sinks.principals.users`), run directly against
PostgreSQL.
Passwords are read from a prompt (twice, not echoed) or, for scripts, from stdin with
``--password-stdin``; never from an argument (it would sit in the shell history and ``ps``).
``disable`` and ``passwd`` end every open session of the user at once.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.console import Console

from synapseops.cli.tokens import _actor, _engine, _fail, _print_rows
from synapseops.principals import NAME_PATTERN, Role

users_app = typer.Typer(no_args_is_help=True, help="People who log in to the web console.")

_COLUMNS = ("name", "roles", "created_at", "created_by", "password_changed_at", "last_used_at",
            "revoked_at")  # fmt: skip


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    return str(typer.prompt("password", hide_input=True, confirmation_prompt=True))


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {
        key: value.isoformat() if isinstance(value, datetime) else value
        for key, value in row.items()
        if key != "id"
    }


@users_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="the login name, e.g. ana or ana@example.com")],
    roles: Annotated[
        list[Role], typer.Option("--role", help="viewer, operator, approver or admin (repeat)")
    ],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="read the password from stdin")
    ] = False,
) -> None:
    """Create a console user with roles."""
    from sinks.principals.users import create_user
    from synapseops.errors import DatabaseUnavailable, RecordConflict, RecordInvalid

    name = name.strip().lower()
    if not re.match(NAME_PATTERN, name):
        raise typer.BadParameter(f"name must match {NAME_PATTERN}")
    password = _password(password_stdin)
    engine = _engine()
    try:
        row = create_user(engine, name=name, roles=roles, password=password, created_by=_actor())
    except (RecordConflict, RecordInvalid, DatabaseUnavailable) as exc:
        raise _fail(exc) from None
    finally:
        engine.dispose()
    Console(stderr=True).print(f"user [bold]{row['name']}[/bold] ({', '.join(row['roles'])})")


@users_app.command("list")
def list_(
    include_disabled: Annotated[bool, typer.Option("--all", help="disabled ones too")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print a JSON list")] = False,
) -> None:
    """The console users (never their password digests)."""
    from sinks.principals.users import list_users
    from synapseops.errors import DatabaseUnavailable

    engine = _engine()
    try:
        rows = list_users(engine, include_disabled=include_disabled)
    except DatabaseUnavailable as exc:
        raise _fail(exc) from None
    finally:
        engine.dispose()
    _print_rows(rows, _COLUMNS, "console users", as_json=as_json, jsonable=_jsonable)


@users_app.command("disable")
def disable(name: Annotated[str, typer.Argument(help="the user's name")]) -> None:
    """Disable a user: its sessions end at once (the row stays for the audit trail)."""
    from sinks.principals.users import disable_user
    from synapseops.errors import DatabaseUnavailable, RecordNotFound

    engine = _engine()
    try:
        row = disable_user(engine, name.strip().lower(), by=_actor())
    except (RecordNotFound, DatabaseUnavailable) as exc:
        raise _fail(exc) from None
    finally:
        engine.dispose()
    Console(stderr=True).print(f"disabled user {row['name']}; its sessions are over")


@users_app.command("passwd")
def passwd(
    name: Annotated[str, typer.Argument(help="the user's name")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="read the password from stdin")
    ] = False,
) -> None:
    """Set a new password; every open session of the user ends."""
    from sinks.principals.users import set_password
    from synapseops.errors import DatabaseUnavailable, RecordInvalid, RecordNotFound

    password = _password(password_stdin)
    engine = _engine()
    try:
        row = set_password(engine, name.strip().lower(), password)
    except (RecordNotFound, RecordInvalid, DatabaseUnavailable) as exc:
        raise _fail(exc) from None
    finally:
        engine.dispose()
    Console(stderr=True).print(f"new password for {row['name']}; its sessions are over")


def register(app: typer.Typer) -> None:
    app.add_typer(users_app, name="users")


def ensure_demo_users(
    settings: Any, logins: Iterable[tuple[str, str, str]]
) -> list[tuple[str, str, str]]:
    """Create the demo's console ``logins`` (name, role, password) that are missing (dev only);
    they, for printing. The demo passes the sandbox's (the kernel never imports it)."""
    from sinks.db import make_engine
    from sinks.principals.users import create_user
    from synapseops.errors import RecordConflict

    if settings.env != "dev":
        return []
    demo_logins = list(logins)
    engine = make_engine(settings)
    try:
        for name, role, password in demo_logins:
            try:
                create_user(engine, name=name, roles=[role], password=password, created_by="demo")
            except RecordConflict:
                pass  # made by an earlier demo (its password may have been changed since)
    finally:
        engine.dispose()
    return demo_logins
