"""The repository's public sample payloads (``samples/``, sources and licences in its README).

The sandbox builds realistic data from them (GitHub events from the octokit webhook examples,
CRM companies from the ebikes accounts); the sandbox tests read the same copies.
"""

from __future__ import annotations

import json
from typing import Any

from synapseops.settings import PROJECT_ROOT

SAMPLES = PROJECT_ROOT / "samples"


def load(relative: str) -> Any:
    """The parsed JSON of ``samples/<relative>``."""
    return json.loads((SAMPLES / relative).read_bytes())
