"""The consumer-lag collector's rules, without a broker (tests/integration/ops/test_kafka_lag.py
reads a real one): which groups it watches, how lag is counted, what a failed reading shows,
and that a scrape reuses a reading within the cache time."""

from __future__ import annotations

from prometheus_client.core import Metric

from synapseops.kafka_lag import (
    ConsumerLagGauges,
    LagReader,
    LagReading,
    PartitionLag,
    _families,
    lag_prefixes,
    watched_groups,
)
from synapseops.settings import LoaderSettings, ObservabilitySettings, Settings, WorkerSettings


def samples(families: list[Metric]) -> dict[str, list[tuple[dict[str, str], float]]]:
    return {f.name: [(s.labels, s.value) for s in f.samples] for f in families}


def test_a_prefix_watches_its_group_and_the_groups_under_it_only() -> None:
    ids = ["w", "w.dead-letters", "w.payment-settlement.tiers", "wx", "other", "w2.w"]
    assert watched_groups(ids, ["w"]) == (["w", "w.dead-letters", "w.payment-settlement.tiers"], 0)
    assert watched_groups(ids, ["w", "other"])[0][0] == "other"


def test_beyond_the_limit_groups_are_counted_as_skipped_and_the_choice_is_stable() -> None:
    ids = [f"w.{n:03}" for n in range(10)]
    assert watched_groups(reversed(ids), ["w"], limit=4) == (ids[:4], 6)


def test_the_worker_and_loader_groups_are_watched_unless_the_setting_names_others() -> None:
    settings = Settings(
        worker=WorkerSettings(group_id="pool-a"), loader=LoaderSettings(group_id="load-a")
    )
    # The loader commits its loaded offsets so that its lag is read (LoaderLagGrowing).
    assert lag_prefixes(settings) == ["pool-a", "load-a"]
    named = settings.model_copy(
        update={"observability": ObservabilitySettings(lag_groups="pool-a, pool-b,")}
    )
    assert lag_prefixes(named) == ["pool-a", "pool-b"]


def test_lag_is_end_minus_committed_never_below_zero() -> None:
    assert PartitionLag("g", "t", 0, committed=7, end=10).lag == 3
    assert PartitionLag("g", "t", 0, committed=12, end=10).lag == 0


def test_a_reading_becomes_lag_offsets_and_cluster_gauges() -> None:
    reading = LagReading(
        ok=True,
        took_s=0.2,
        partitions=[PartitionLag("g", "t", 0, 4, 10), PartitionLag("g.x", "t", 0, 10, 10)],
        brokers=3,
        under_replicated=2,
    )
    found = samples(list(_families(reading)))
    assert found["synapseops_kafka_consumer_lag"] == [
        ({"group": "g", "topic": "t", "partition": "0"}, 6.0),
        ({"group": "g.x", "topic": "t", "partition": "0"}, 0.0),
    ]
    assert found["synapseops_kafka_partition_end_offset"] == [
        ({"topic": "t", "partition": "0"}, 10.0)
    ]
    assert found["synapseops_kafka_brokers"] == [({}, 3.0)]
    assert found["synapseops_kafka_partitions_under_replicated"] == [({}, 2.0)]
    assert found["synapseops_kafka_lag_read_ok"] == [({}, 1.0)]


def test_a_failed_reading_shows_no_lag_at_all_rather_than_stale_or_zero_lag() -> None:
    found = samples(list(_families(LagReading(ok=False, took_s=3.0))))
    assert found["synapseops_kafka_lag_read_ok"] == [({}, 0.0)]
    assert found["synapseops_kafka_consumer_lag"] == []
    assert found["synapseops_kafka_brokers"] == []


def test_not_watching_exports_the_names_only() -> None:
    found = samples(list(ConsumerLagGauges().collect()))
    assert "synapseops_kafka_consumer_lag" in found
    assert all(values == [] for values in found.values())


class CountingReader(LagReader):
    def __init__(self) -> None:
        super().__init__(Settings().kafka, ["g"])
        self.reads = 0

    def read(self) -> LagReading:
        self.reads += 1
        return LagReading(ok=True, took_s=0.0)


def test_scrapes_within_the_cache_time_share_one_reading() -> None:
    gauges = ConsumerLagGauges()
    settings = Settings(observability=ObservabilitySettings(lag_cache_s=60))
    gauges.watch(settings)
    reader = CountingReader()
    gauges._reader = reader
    for _ in range(5):
        list(gauges.collect())
    assert reader.reads == 1
    gauges.unwatch(Settings())  # another app's settings: still watching
    list(gauges.collect())
    assert reader.reads == 1
    gauges.unwatch(settings)
    assert gauges.reading() is None
