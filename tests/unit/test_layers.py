"""The layer rules of docs/ARCHITECTURE.md hold: every import-linter contract is kept."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from synapseops.settings import PROJECT_ROOT


def test_every_layer_contract_is_kept() -> None:
    lint_imports = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint_imports is not None, "import-linter is a dev dependency: pip install -e '.[dev]'"
    result = subprocess.run(
        [lint_imports, "--no-cache", "--config", str(PROJECT_ROOT / ".importlinter")],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "BROKEN" not in result.stdout
