"""The local cluster's layout and rendered node files (the real cluster: tests/integration/ops/
test_three_brokers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from synapseops.errors import ConfigurationError
from synapseops.local.kafka_cluster import LocalCluster, node_addresses
from synapseops.settings import KafkaSettings, Settings


def settings(tmp_path: Path, port: int = 19092, controller: int = 19093) -> Settings:
    kafka = KafkaSettings(bootstrap=f"127.0.0.1:{port}", controller_port=controller)
    return Settings(data_dir=tmp_path, kafka=kafka)


def properties(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line and line[0] != "#")


def test_three_nodes_on_interleaved_ports() -> None:
    nodes = node_addresses(KafkaSettings(bootstrap="127.0.0.1:9092", controller_port=9093), 3)
    assert [(n.node_id, n.port, n.controller_port) for n in nodes] == [
        (1, 9092, 9093),
        (2, 9094, 9095),
        (3, 9096, 9097),
    ]


@pytest.mark.parametrize("brokers", [0, 2, 4])
def test_a_quorum_needs_an_odd_number_of_nodes(brokers: int) -> None:
    with pytest.raises(ConfigurationError, match="odd number"):
        node_addresses(KafkaSettings(), brokers)


def test_overlapping_ports_are_refused_with_the_rule() -> None:
    with pytest.raises(ConfigurationError, match="overlap"):
        node_addresses(KafkaSettings(bootstrap="127.0.0.1:9092", controller_port=9094), 3)


def test_each_node_is_a_voter_broker_with_replication_three_and_isr_two(tmp_path: Path) -> None:
    cluster = LocalCluster(settings(tmp_path), 3)
    assert cluster.bootstrap == "127.0.0.1:19092,127.0.0.1:19094,127.0.0.1:19096"
    second = cluster.nodes[1]
    props = properties(second.properties())
    assert props["node.id"] == "2"
    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.voters"] == (
        "1@127.0.0.1:19093,2@127.0.0.1:19095,3@127.0.0.1:19097"
    )
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19094,CONTROLLER://127.0.0.1:19095"
    assert props["log.dirs"] == str(tmp_path / "kafka-cluster" / "node-2" / "data")
    for key in (
        "default.replication.factor",
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
    ):
        assert props[key] == "3", key
    assert props["min.insync.replicas"] == props["transaction.state.log.min.isr"] == "2"
    assert props["broker.session.timeout.ms"] == "6000"
    assert props["auto.create.topics.enable"] == "false"
    assert second.pid_path == tmp_path / "run" / "kafka-2.pid"
    assert second.log_path == tmp_path / "logs" / "kafka-2.log"
    assert second.settings.kafka.heap == "512m"
    assert second.libs == tmp_path / "cache" / "kafka-4.1.1" / "libs"


def test_the_environment_points_the_platform_at_all_nodes(tmp_path: Path) -> None:
    environment = LocalCluster(settings(tmp_path), 3).environment()
    assert environment == {
        "SYNAPSEOPS_KAFKA_BOOTSTRAP": "127.0.0.1:19092,127.0.0.1:19094,127.0.0.1:19096",
        "SYNAPSEOPS_KAFKA_REPLICATION_FACTOR": "3",
        "SYNAPSEOPS_KAFKA_MIN_INSYNC_REPLICAS": "2",
    }
    # What the platform makes of it: topics with 3 replicas, 2 in sync for a write.
    applied = Settings(env="prod", kafka=KafkaSettings(replication_factor=3, min_insync_replicas=2))
    assert applied.topic_replication == (3, 2)


def test_stop_and_status_find_the_cluster_a_start_recorded(tmp_path: Path) -> None:
    assert LocalCluster.recorded(settings(tmp_path)) is None
    (tmp_path / "kafka-cluster").mkdir()
    (tmp_path / "kafka-cluster" / "brokers").write_text("3\n")
    found = LocalCluster.recorded(settings(tmp_path))
    assert found is not None and [node.name for node in found.nodes] == [
        "kafka-1",
        "kafka-2",
        "kafka-3",
    ]


def test_a_recorded_cluster_of_another_size_is_not_restarted_with_other_voters(
    tmp_path: Path,
) -> None:
    (tmp_path / "kafka-cluster").mkdir()
    (tmp_path / "kafka-cluster" / "brokers").write_text("3\n")
    with pytest.raises(ConfigurationError, match="has 3 nodes"):
        LocalCluster(settings(tmp_path), 5).start()
