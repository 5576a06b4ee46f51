"""``synapseops``: the one command line of the platform.

Each group lives in its own module and registers itself here; heavy imports (Faust, FastAPI)
happen inside the commands so ``synapseops status`` stays fast.
"""

from __future__ import annotations

import typer

from synapseops.cli import (
    credentials,
    crm,
    demo,
    local,
    replay,
    run,
    stack,
    tokens,
    topics,
    users,
)

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
for module in (stack, run, local, topics, replay, tokens, credentials, users, demo, crm):
    module.register(app)


def main() -> None:
    app()
