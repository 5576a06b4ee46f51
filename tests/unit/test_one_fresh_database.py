"""The tests make a database of their own in one place: ``tests/integration/databases.py``.

Copies of that helper drifted before (one forgot ``IF EXISTS``, one ``FORCE``): a test that
needs a database asks the one helper, so a fix to it reaches every test.
"""

from __future__ import annotations

import re
from pathlib import Path

from synapseops.settings import PROJECT_ROOT

CREATE = re.compile(r"CREATE\s+DATABASE", re.IGNORECASE)
HELPER = PROJECT_ROOT / "tests" / "integration" / "databases.py"
THIS = Path(__file__).resolve()


def test_only_the_helper_creates_a_database() -> None:
    creators = [
        str(path.relative_to(PROJECT_ROOT))
        for path in (PROJECT_ROOT / "tests").rglob("*.py")
        if path not in (HELPER, THIS) and CREATE.search(path.read_text())
    ]
    assert creators == []
    assert CREATE.search(HELPER.read_text())
