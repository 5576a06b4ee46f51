"""docker-compose.kafka.yml, Dockerfile and the Prometheus config, checked without Docker.

The environment names are checked against the settings classes themselves, so renaming a
setting (or its section's prefix) breaks this test until the compose file follows. The
file's ``${VAR:?message}`` interpolation is rendered here the way compose does it, so "refuses
to start without its secrets" and "every container gets the same credentials key" are checked
on the environments the containers would really get, down to building their Settings.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

from synapseops.settings import (
    DEFAULT_DEV_API_TOKEN,
    DEFAULT_DEV_SOURCE_TOKEN,
    DEFAULT_DEV_STRIPE_SECRET,
    ApiSettings,
    KafkaSettings,
    LoaderSettings,
    SandboxSettings,
    Settings,
    WorkerSettings,
)

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.kafka.yml"
PROMETHEUS = ROOT / "deploy/prometheus/prometheus.yml"
PLATFORM = ("api", "worker", "sandbox", "loader")
# Every container that runs the platform's code, the one-shot steps included.
PLATFORM_CONTAINERS = (*PLATFORM, "migrate", "topics")
VARIABLE = re.compile(r"\b(SYNAPSEOPS_[A-Z0-9_]+)")
ENV_EXAMPLE = ROOT / "deploy/compose.env.example"
REQUIRED = (
    "SYNAPSEOPS_API_TOKEN",
    "SYNAPSEOPS_STRIPE_WEBHOOK_SECRET",
    "SYNAPSEOPS_CREDENTIALS_KEY",
    "POSTGRES_PASSWORD",
    "GRAFANA_ADMIN_PASSWORD",
)
# What an operator's deploy/compose.env would hold (the key is a valid Fernet key).
FILLED = {
    "SYNAPSEOPS_API_TOKEN": "op-token-4f1e9a",
    "SYNAPSEOPS_STRIPE_WEBHOOK_SECRET": "whsec_live_9c2d",
    "SYNAPSEOPS_CREDENTIALS_KEY": "u6y1Zq3ZSkE1m1cB4v6xgJrk9ePqkW1QKq3C0yLZr0E=",
    "POSTGRES_PASSWORD": "pgpass8d1",
    "GRAFANA_ADMIN_PASSWORD": "grafana-7a",
}
_INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::([?-])([^}]*))?\}")


class MissingVariable(Exception):
    pass


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?error}`` over a loaded file."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match[str]) -> str:
        name, kind, text = match.groups()
        given = env.get(name, "")
        if given:
            return given
        if kind == "?":
            raise MissingVariable(f"{name}: {text}")
        return text if kind == "-" else ""

    return _INTERPOLATION.sub(one, value)


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
    services = interpolate(compose["services"], FILLED)
    for name in PLATFORM:
        service = services[name]
        assert service["build"] == "." and service["image"] == "synapseops:local", name
        env = service["environment"]
        assert env["SYNAPSEOPS_KAFKA_BOOTSTRAP"] == "kafka:9092", name
        assert env["SYNAPSEOPS_DATABASE_URL"].startswith("postgresql+psycopg2://"), name
        assert "@postgres:5432/" in env["SYNAPSEOPS_DATABASE_URL"], name
        for bind in ("API_HOST", "WORKER_METRICS_HOST"):
            assert env[f"SYNAPSEOPS_{bind}"] == "0.0.0.0", (name, bind)
        assert service["command"] == [name]
    # The sandbox listens on every interface; everyone else finds it by its service name.
    assert services["sandbox"]["environment"]["SYNAPSEOPS_SANDBOX_HOST"] == "0.0.0.0"
    for name in ("api", "worker"):
        assert services[name]["environment"]["SYNAPSEOPS_SANDBOX_HOST"] == "sandbox", name


def test_no_dev_mode_and_no_public_secret_in_the_file(compose: dict[str, Any]) -> None:
    text = COMPOSE.read_text()
    for public in (DEFAULT_DEV_API_TOKEN, DEFAULT_DEV_STRIPE_SECRET, DEFAULT_DEV_SOURCE_TOKEN):
        assert public not in text
    services = interpolate(compose["services"], FILLED)
    for name in PLATFORM_CONTAINERS:
        assert services[name]["environment"]["SYNAPSEOPS_ENV"] == "prod", name
    # The database and Grafana passwords come from the env file too, never a default.
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == FILLED["POSTGRES_PASSWORD"]
    grafana = services["grafana"]["environment"]
    assert grafana["GF_SECURITY_ADMIN_PASSWORD"] == FILLED["GRAFANA_ADMIN_PASSWORD"]


def test_compose_refuses_to_start_without_each_secret(compose: dict[str, Any]) -> None:
    assert set(REQUIRED) <= set(re.findall(r"^([A-Z_]+)=", ENV_EXAMPLE.read_text(), re.M))
    assert "=" not in "".join(
        line.split("=", 1)[1]
        for line in ENV_EXAMPLE.read_text().splitlines()
        if re.match(r"^[A-Z_]+=", line)
    ), "the example ships no values"
    interpolate(compose, FILLED)
    for name in REQUIRED:
        missing = {key: value for key, value in FILLED.items() if key != name}
        with pytest.raises(MissingVariable, match=name):
            interpolate(compose, missing)


def test_every_container_builds_safe_settings_with_one_credentials_key(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import os

    services = interpolate(compose["services"], FILLED)
    monkeypatch.chdir(tmp_path)  # no stray .env of the checkout
    keys = set()
    for name in PLATFORM_CONTAINERS:
        env = services[name]["environment"]
        keys.add(env["SYNAPSEOPS_CREDENTIALS_KEY"])
        for variable in [v for v in os.environ if v.startswith("SYNAPSEOPS_")]:
            monkeypatch.delenv(variable)
        for variable, value in env.items():
            monkeypatch.setenv(variable, str(value))
        settings = Settings()
        settings.require_safe_secrets()
        assert settings.env == "prod", name
        assert settings.stripe.secrets == [FILLED["SYNAPSEOPS_STRIPE_WEBHOOK_SECRET"]], name
        assert settings.payments.finance_url.startswith("http://sandbox:"), name
        assert settings.ingress.sources == {}, name  # the demo's public sources are gone
    assert keys == {FILLED["SYNAPSEOPS_CREDENTIALS_KEY"]}


def test_only_the_api_is_published(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert [name for name, service in services.items() if service.get("ports")] == ["api"]
    assert services["api"]["ports"] == [f"127.0.0.1:{default(ApiSettings, 'port')}:8000"]


def test_ports_match_the_settings_defaults(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert default(ApiSettings, "port") in published(services["api"])
    finance = interpolate(services["worker"], FILLED)["environment"]
    sandbox = f"http://sandbox:{default(SandboxSettings, 'port')}/"
    assert finance["SYNAPSEOPS_PAYMENTS_FINANCE_URL"].startswith(sandbox)
    kafka_port = int(default(KafkaSettings, "bootstrap").rsplit(":", 1)[1])
    listeners = services["kafka"]["environment"]["KAFKA_LISTENERS"]
    assert f"PLAINTEXT://:{kafka_port}" in listeners
    assert services["kafka"]["image"] == "apache/kafka:4.1.1"
    assert services["postgres"]["image"] == "postgres:15"


def test_prometheus_scrapes_every_platform_process(compose: dict[str, Any]) -> None:
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
    loader = f"loader:{default(LoaderSettings, 'metrics_port')}"
    assert {api, worker, loader} <= targets
    # Every scraped process is a service of this file (a job for none would stay down).
    assert {target.split(":")[0] for target in targets} - {"localhost"} <= set(compose["services"])
    paths = {job.get("metrics_path", "/metrics") for job in config["scrape_configs"]}
    assert paths == {"/metrics"}


def test_dockerfile_installs_every_package_it_copies() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert dockerfile.startswith("#") and "FROM python:3.11-slim" in dockerfile
    assert "pip install --no-deps ." in dockerfile
    # The loader's compiled transcoder is built in the image (the import fails the build).
    assert "setup.py" in dockerfile and "import streams.aggregation._transcode" in dockerfile
    for package in ("synapseops", "streams", "topics", "schemas", "sinks", "api", "sandbox"):
        assert f"COPY {package} ./{package}" in dockerfile, package
