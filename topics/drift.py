"""Declared topics against the broker's, as pure functions over plain data: which topics are
missing, in sync, drifted (partitions, replication, configs) or extra (undeclared, in a
namespace the registry owns). :mod:`topics.admin` reads the broker and acts on the answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from topics.registry import TopicSpec

TopicStatus = Literal["in_sync", "drift", "missing", "extra"]


@dataclass(frozen=True)
class ActualTopic:
    """A topic as the broker has it (configs: at least every key some declaration owns)."""

    name: str
    partitions: int
    replication_factor: int
    configs: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ConfigDrift:
    key: str
    declared: str
    actual: str | None


@dataclass(frozen=True)
class TopicDrift:
    name: str
    declared_partitions: int
    actual_partitions: int
    declared_replication: int
    actual_replication: int
    configs: tuple[ConfigDrift, ...] = ()

    @property
    def partitions_short(self) -> bool:
        return self.actual_partitions < self.declared_partitions

    @property
    def in_sync(self) -> bool:
        return (
            self.actual_partitions == self.declared_partitions
            and self.actual_replication == self.declared_replication
            and not self.configs
        )

    @property
    def replication_differs(self) -> bool:
        return self.actual_replication != self.declared_replication

    def describe(self) -> list[str]:
        """One human-readable line per difference."""
        lines = []
        if self.actual_partitions != self.declared_partitions:
            lines.append(
                f"partitions {self.actual_partitions}, declared {self.declared_partitions}"
            )
        if self.replication_differs:
            lines.append(
                f"replication factor {self.actual_replication}, "
                f"declared {self.declared_replication} ({REPLICATION_FIX})"
            )
        lines.extend(f"{c.key}={c.actual}, declared {c.declared}" for c in self.configs)
        return lines


# Kafka has no "alter replication factor": replicas change only through a reassignment.
REPLICATION_FIX = (
    "not changed by apply: move replicas with kafka-reassign-partitions.sh --execute and a "
    "plan listing the new replicas of each partition, or change "
    "SYNAPSEOPS_KAFKA_REPLICATION_FACTOR to what the cluster has"
)


@dataclass(frozen=True)
class TopicRow:
    """One line of ``topics list``: a declared topic, an undeclared one, or both sides."""

    name: str
    status: TopicStatus
    declared: TopicSpec | None
    actual: ActualTopic | None
    drift: TopicDrift | None = None

    @property
    def declared_partitions(self) -> int | None:
        return self.declared.partitions if self.declared else None

    @property
    def actual_partitions(self) -> int | None:
        return self.actual.partitions if self.actual else None


def _normalise(value: str | None) -> str | None:
    # List-valued configs (cleanup.policy) come back in any order: "compact,delete".
    if value is None:
        return None
    return ",".join(sorted(part.strip() for part in value.split(",")))


def config_drift(declared: Mapping[str, str], actual: Mapping[str, str]) -> tuple[ConfigDrift, ...]:
    """Declared keys whose actual value differs; keys the declaration does not own are ignored."""
    return tuple(
        ConfigDrift(key, value, actual.get(key))
        for key, value in sorted(declared.items())
        if _normalise(actual.get(key)) != _normalise(value)
    )


def topic_drift(spec: TopicSpec, actual: ActualTopic) -> TopicDrift:
    """How ``actual`` differs from ``spec``; a spec naming no replication factor has no opinion
    on it (the entry points below always fill it in from the settings first)."""
    declared_replication = spec.replication_factor or actual.replication_factor
    return TopicDrift(
        name=spec.name,
        declared_partitions=spec.partitions,
        actual_partitions=actual.partitions,
        declared_replication=declared_replication,
        actual_replication=actual.replication_factor,
        configs=config_drift(spec.configs(), actual.configs),
    )


def namespaces(specs: Iterable[TopicSpec]) -> frozenset[str]:
    """Name prefixes the registry owns: the first dotted segment of each declared name."""
    return frozenset(spec.name.split(".", 1)[0] + "." for spec in specs)


def compare(
    specs: Iterable[TopicSpec], actual: Mapping[str, ActualTopic], *, include_extra: bool = True
) -> list[TopicRow]:
    """Declared vs actual, sorted by name. ``extra``: undeclared, in a namespace we own."""
    declared = {spec.name: spec for spec in specs}
    rows = []
    for name, spec in declared.items():
        topic = actual.get(name)
        if topic is None:
            rows.append(TopicRow(name, "missing", spec, None))
            continue
        drift = topic_drift(spec, topic)
        rows.append(TopicRow(name, "in_sync" if drift.in_sync else "drift", spec, topic, drift))
    if include_extra:
        owned = namespaces(declared.values())
        for name, topic in actual.items():
            if name not in declared and name.startswith(tuple(owned)):
                rows.append(TopicRow(name, "extra", None, topic))
    return sorted(rows, key=lambda row: row.name)
