"""``synapseops credentials rotate-key``: re-encrypt stored credentials under a new key.

Run it against PostgreSQL directly (no API needed) once every process has
``SYNAPSEOPS_CREDENTIALS_KEY=<new>,<old>``; :mod:`sinks.integration.credential_keys` has the whole
procedure. Exit status 0 when the old keys may be dropped, 1 when a credential opens with
no configured key (named by id and name; no secret is ever printed).
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from synapseops.cli.stack import command_settings, reported_errors

credentials_app = typer.Typer(no_args_is_help=True, help="Stored (encrypted) credentials.")


@credentials_app.command("rotate-key")
def rotate_key(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be re-encrypted; write nothing.")
    ] = False,
) -> None:
    """Re-encrypt every stored secret (integration credentials, CRM platform tokens,
    notification channel secrets) under the first key of SYNAPSEOPS_CREDENTIALS_KEY."""
    from sinks.crm.tables import crm_platforms
    from sinks.db import make_engine
    from sinks.integration.credential_keys import (
        INTEGRATION_CREDENTIALS,
        SealedColumn,
        rotate_credentials_key,
    )
    from sinks.notifications.tables import channels

    # Every service's secrets are sealed with the one key: one rotation re-encrypts them all.
    sealed = (
        INTEGRATION_CREDENTIALS,
        SealedColumn(crm_platforms, "credential_ciphertext"),
        SealedColumn(channels, "secret"),
    )

    with reported_errors():
        settings = command_settings()
        engine = make_engine(settings)
        try:
            report = rotate_credentials_key(engine, settings, dry_run=dry_run, sealed=sealed)
        finally:
            engine.dispose()
    typer.echo(
        json.dumps(
            {
                "dry_run": dry_run,
                "rotated": report.rotated,
                "already_current": report.current,
                "unreadable": report.unreadable,
                "changed_meanwhile": report.changed_meanwhile,
                "old_keys_may_be_dropped": report.complete and not dry_run,
            },
            indent=2,
        )
    )
    if not report.complete:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(credentials_app, name="credentials")
