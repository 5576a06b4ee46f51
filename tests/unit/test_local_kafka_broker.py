"""The local broker's rendered files: what the broker and Maven are told, from Settings."""

from __future__ import annotations

from pathlib import Path

from synapseops.local.kafka_broker import (
    LocalBroker,
    parse_java_major,
    render_pom,
    render_server_properties,
)
from synapseops.settings import KafkaSettings, Settings


def _settings(tmp_path: Path) -> Settings:
    kafka = KafkaSettings(bootstrap="127.0.0.1:19092", controller_port=19093, version="4.1.1")
    return Settings(data_dir=tmp_path, kafka=kafka)


def _properties(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line and line[0] != "#")
    return dict(pairs)


def test_server_properties_single_kraft_node_on_the_configured_ports(tmp_path: Path) -> None:
    props = _properties(render_server_properties(_settings(tmp_path), tmp_path / "data"))
    assert props["process.roles"] == "broker,controller"
    assert props["node.id"] == "1"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert props["log.dirs"] == str(tmp_path / "data")
    assert props["auto.create.topics.enable"] == "false"
    assert props["group.initial.rebalance.delay.ms"] == "0"
    for key in ("offsets.topic.replication.factor", "transaction.state.log.replication.factor"):
        assert props[key] == "1"


def test_pom_pins_kafka_and_the_log4j2_logging_jars() -> None:
    pom = render_pom("4.1.1")
    assert "<artifactId>kafka_2.13</artifactId><version>4.1.1</version>" in pom
    assert "<artifactId>slf4j-api</artifactId><version>2.0.17</version>" in pom
    assert "<artifactId>log4j-core</artifactId><version>2.24.3</version>" in pom
    assert "<artifactId>log4j-slf4j2-impl</artifactId><version>2.24.3</version>" in pom


def test_java_major_version_from_both_version_formats() -> None:
    assert parse_java_major('openjdk version "17.0.15" 2025-04-15') == 17
    assert parse_java_major('openjdk version "21" 2023-09-19') == 21
    assert parse_java_major('java version "1.8.0_392"') == 8
    assert parse_java_major("no java here") is None


def test_paths_follow_the_data_folder_and_the_cache_can_be_shared(tmp_path: Path) -> None:
    broker = LocalBroker(_settings(tmp_path))
    assert broker.libs == tmp_path / "cache" / "kafka-4.1.1" / "libs"
    assert broker.pid_path == tmp_path / "run" / "kafka.pid"
    assert broker.log_path == tmp_path / "logs" / "kafka.log"
    assert broker.log_dir.is_relative_to(tmp_path / "kafka")
    shared = LocalBroker(_settings(tmp_path), cache_dir=Path("/elsewhere"))
    assert shared.libs == Path("/elsewhere/kafka-4.1.1/libs")
    assert not shared.fetched


def test_write_config_renders_both_files_and_format_keeps_existing_data(tmp_path: Path) -> None:
    broker = LocalBroker(_settings(tmp_path))
    broker.log_dir.mkdir(parents=True)
    (broker.log_dir / "meta.properties").write_text("cluster.id=kept\n")
    broker.format()  # formatted already: renders the config, never touches the data
    assert (broker.log_dir / "meta.properties").read_text() == "cluster.id=kept\n"
    assert "19092" in broker.server_properties.read_text()
    assert "Configuration:" in broker.log4j_config.read_text()
