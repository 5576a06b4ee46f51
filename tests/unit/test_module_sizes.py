"""Product modules stay under ~350 lines: a module past that is split along its seams."""

from __future__ import annotations

from synapseops.settings import PROJECT_ROOT

MAX_LINES = 350
PACKAGES = ("synapseops", "topics", "schemas", "streams", "sinks", "api")


def test_no_product_module_is_over_the_limit() -> None:
    over = {
        str(path.relative_to(PROJECT_ROOT)): lines
        for package in PACKAGES
        for path in (PROJECT_ROOT / package).rglob("*.py")
        if "migrations" not in path.parts
        and (lines := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert over == {}
