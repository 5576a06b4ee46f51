"""The one table the peers benchmark prints: figures, and each as a ratio to the first row."""

from __future__ import annotations

from collections.abc import Sequence

from bench.peers.harness import Figures, Result

HEADER = (
    f"{'peer':<52} {'msgs/s':>9} {'×':>6} {'CPU s/M':>8} {'×':>6} {'-map':>6} "
    f"{'RSS MB':>7} {'×':>6}  output"
)


def _ratio(value: float, base: float | None) -> str:
    return f"{value / base:5.2f}x" if base else "     -"


def _verdict(result: Result) -> str:
    verdict = result.verdict
    if verdict is None:
        return "not verified"
    if (
        result.note
        and not verdict.ok
        and not (verdict.doubled or verdict.altered or verdict.unexpected)
    ):
        # The peer did not finish (timeout, exit): what it wrote was right, but not all of it.
        return f"incomplete: {verdict.received:,} of {verdict.expected:,}, none doubled or altered"
    return verdict.summary()


def render(results: Sequence[Result], mapping_us: float) -> list[str]:
    """``-map``: CPU s/M minus what the mapping alone costs (µs per message): the runtime's own."""
    base = next((r.figures for r in results if r.figures), Figures(0.0, 0.0, 0, 0.0))
    lines = [HEADER, "-" * len(HEADER)]
    for result in results:
        label = result.row.label[:52]
        figures = result.figures
        if figures is None:
            lines.append(f"{label:<52} {result.note or 'no figures'}")
            continue
        rss = figures.peak_rss / 2**20
        verdict = _verdict(result)
        line = (
            f"{label:<52} {figures.rate:>9,.0f} {_ratio(figures.rate, base.rate):>6} "
            f"{figures.cpu_per_million:>8,.0f} "
            f"{_ratio(figures.cpu_per_million, base.cpu_per_million):>6} "
            f"{figures.cpu_per_million - mapping_us:>6,.0f} "
            f"{rss:>7,.0f} {_ratio(figures.peak_rss, base.peak_rss):>6}  {verdict}"
        )
        if result.note:
            line += f" [{result.note}]"
        lines.append(line)
    return lines
