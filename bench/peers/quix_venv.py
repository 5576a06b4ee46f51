"""The quixstreams peer's own virtual environment, created on first use.

quixstreams pins an older confluent-kafka (``<2.13``) than the project (``>=2.16``), so it cannot
share the project's environment. It gets ``<data>/bench/quix-venv`` with only what its peer
imports: quixstreams (pulling its own confluent-kafka and a pydantic it accepts) — the mapping
engine and the peer come from this repository on ``PYTHONPATH``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

# The version the registry serves (checked against its package list), pinned so every run
# compares against the same quixstreams.
# msgspec: the mapping engine (streams/mapping/payload.py) decodes with it, at the project's pin.
REQUIREMENTS = ("quixstreams==3.28.1", "msgspec==0.22.0")


def ensure_quix_venv(where: Path) -> Path:
    """The venv's python, creating or refreshing the venv when the pins changed."""
    python = where / "bin" / "python"
    stamp = where / "requirements.txt"
    wanted = "\n".join(REQUIREMENTS) + "\n"
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    sys.stdout.write(f"creating the quixstreams environment in {where} (first run only)\n")
    sys.stdout.flush()
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--clear", str(where)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *REQUIREMENTS],
        check=True,
    )
    stamp.write_text(wanted)
    return python
