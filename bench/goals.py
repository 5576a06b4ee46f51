"""Issue 10's goals, and what this run measured against each: printed at the end of
``python -m bench`` (``make bench``). Benchmarks report a figure with :func:`measured`; a goal
no benchmark of the run measured is printed as "not measured". Nothing is asserted.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Goal:
    key: str
    text: str


GOALS: tuple[Goal, ...] = (
    Goal("settle-1", "settlements/s, one worker, exactly once: >= 2,000"),
    Goal("settle-p99", "p99 event->ledger at half that rate: <= 250 ms"),
    Goal("settle-2", "two workers in one group vs one: >= 1.7x"),
    Goal("flow-faust", "Kafka->Kafka flow, whole road, vs plain Faust agent: >= 1.0x"),
    Goal("flow-quix", "Kafka->Kafka flow vs quixstreams (as close as Faust allows)"),
    Goal("ingress", "webhook ingress req/s vs bare FastAPI endpoint: >= 40%"),
    Goal("ingress-p99", "webhook ingress p99 at half load: <= 50 ms"),
    Goal("rss", "worker RSS steady: <= 300 MB"),
    Goal("rss-growth", "worker RSS growth over the run: <= 10%"),
)

# key -> (what was measured, met?) — None when a goal has no pass mark (a ratio to show).
_MEASURED: dict[str, tuple[str, bool | None]] = {}


def measured(key: str, figure: str, met: bool | None) -> None:
    """Record this run's figure for goal ``key`` (the last one recorded wins)."""
    if key not in {goal.key for goal in GOALS}:
        raise KeyError(f"no goal {key!r}")
    _MEASURED[key] = (figure, met)


def table() -> list[str]:
    """The goals table: goal, measured, met?"""
    width = max(len(goal.text) for goal in GOALS)
    lines = [f"{'goal':<{width}}  {'measured':<34}  met?", "-" * (width + 42)]
    for goal in GOALS:
        figure, met = _MEASURED.get(goal.key, ("not measured", None))
        verdict = "-" if met is None else ("yes" if met else "NO")
        lines.append(f"{goal.text:<{width}}  {figure:<34}  {verdict}")
    return lines
