"""docker-compose.kafka.yml, Dockerfile and the Prometheus config, checked without Docker.

The environment names are checked against the settings classes themselves, so renaming a
setting (or its section's prefix) breaks this test until the compose file follows.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

from synapseops.settings import (
    ApiSettings,
    KafkaSettings,
    SandboxSettings,
    Settings,
    WorkerSettings,
)

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.kafka.yml"
PROMETHEUS = ROOT / "deploy/prometheus/prometheus.yml"
PLATFORM = ("api", "worker", "sandbox")
VARIABLE = re.compile(r"\b(SYNAPSEOPS_[A-Z0-9_]+)")


def valid_env_names() -> set[str]:
    """Every environment name the settings read: section prefix + field name."""
    prefix = Settings.model_config["env_prefix"]
    names: set[str] = set()
    for field_name, field in Settings.model_fields.items():
        section = field.annotation
        if isinstance(section, type) and issubclass(section, BaseSettings):
            section_prefix = section.model_config["env_prefix"]
            names.update(f"{section_prefix}{sub}".upper() for sub in section.model_fields)
        else:
            names.add(f"{prefix}{field_name}".upper())
    return names


def default(section: type[BaseSettings], field: str) -> Any:
    return section.model_fields[field].default


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(loaded, dict)
    return loaded


def published(service: dict[str, Any]) -> set[int]:
    return {int(str(port).split(":")[-1]) for port in service.get("ports", [])}


def test_services_exist(compose: dict[str, Any]) -> None:
    expected = {"kafka", "postgres", "prometheus", "grafana", *PLATFORM}
    assert expected <= set(compose["services"])


def test_valid_names_follow_the_settings() -> None:
    names = valid_env_names()
    assert {"SYNAPSEOPS_KAFKA_BOOTSTRAP", "SYNAPSEOPS_DATABASE_URL", "SYNAPSEOPS_ENV"} <= names
    assert "SYNAPSEOPS_WORKER_METRICS_PORT" in names
    assert "SYNAPSEOPS_KAFKA" not in names


def test_every_synapseops_variable_is_a_real_setting(compose: dict[str, Any]) -> None:
    used = set(VARIABLE.findall(COMPOSE.read_text()))
    assert used, "the compose file configures nothing through SYNAPSEOPS_* variables"
    assert used - valid_env_names() == set()


def test_platform_processes_share_one_image_and_the_settings(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in PLATFORM:
        service = services[name]
        assert service["build"] == "." and service["image"] == "synapseops:local", name
        env = service["environment"]
        assert env["SYNAPSEOPS_KAFKA_BOOTSTRAP"] == "kafka:9092", name
        assert env["SYNAPSEOPS_DATABASE_URL"].startswith("postgresql+psycopg2://"), name
        assert "@postgres:5432/" in env["SYNAPSEOPS_DATABASE_URL"], name
        for bind in ("API_HOST", "WORKER_METRICS_HOST", "SANDBOX_HOST"):
            assert env[f"SYNAPSEOPS_{bind}"] == "0.0.0.0", (name, bind)
        assert "SYNAPSEOPS_API_TOKEN" in env and "SYNAPSEOPS_ENV" in env
        assert service["command"] == [name]


def test_ports_match_the_settings_defaults(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert default(ApiSettings, "port") in published(services["api"])
    assert default(SandboxSettings, "port") in published(services["sandbox"])
    assert default(WorkerSettings, "metrics_port") in published(services["worker"])
    kafka_port = int(default(KafkaSettings, "bootstrap").rsplit(":", 1)[1])
    listeners = services["kafka"]["environment"]["KAFKA_LISTENERS"]
    assert f"PLAINTEXT://:{kafka_port}" in listeners
    assert services["kafka"]["image"] == "apache/kafka:4.1.1"
    assert services["postgres"]["image"] == "postgres:15"


def test_prometheus_scrapes_api_and_worker(compose: dict[str, Any]) -> None:
    mounts = compose["services"]["prometheus"]["volumes"]
    assert any(m.startswith("./deploy/prometheus/prometheus.yml:") for m in mounts)
    config = yaml.safe_load(PROMETHEUS.read_text())
    targets = {
        target
        for job in config["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    }
    api = f"api:{default(ApiSettings, 'port')}"
    worker = f"worker:{default(WorkerSettings, 'metrics_port')}"
    assert {api, worker} <= targets
    paths = {job.get("metrics_path", "/metrics") for job in config["scrape_configs"]}
    assert paths == {"/metrics"}


def test_dockerfile_installs_every_package_it_copies() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert dockerfile.startswith("#") and "FROM python:3.11-slim" in dockerfile
    assert "pip install --no-deps ." in dockerfile
    for package in ("synapseops", "streams", "topics", "schemas", "sinks", "api", "sandbox"):
        assert f"COPY {package} ./{package}" in dockerfile, package
