"""Topic durability and the other settings of the ops sections."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from synapseops.settings import KafkaSettings, ReplaySettings, Settings, SupervisionSettings


@pytest.mark.parametrize(("env", "expected"), [("dev", (1, 1)), ("test", (1, 1)), ("prod", (3, 2))])
def test_replication_defaults_follow_the_environment(env: str, expected: tuple[int, int]) -> None:
    settings = Settings(env=env, kafka=KafkaSettings())  # type: ignore[arg-type]
    assert settings.topic_replication == expected


def test_replication_can_be_set_and_min_insync_follows_a_smaller_factor() -> None:
    assert Settings(env="prod", kafka=KafkaSettings(replication_factor=1)).topic_replication == (
        1,
        1,
    )
    own = KafkaSettings(replication_factor=5, min_insync_replicas=3)
    assert Settings(env="dev", kafka=own).topic_replication == (5, 3)
    with pytest.raises(ValidationError, match="exceeds"):
        Settings(kafka=KafkaSettings(replication_factor=1, min_insync_replicas=2))


def test_the_environment_names_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNAPSEOPS_ENV", "prod")
    monkeypatch.setenv("SYNAPSEOPS_KAFKA_REPLICATION_FACTOR", "4")
    monkeypatch.setenv("SYNAPSEOPS_KAFKA_MIN_INSYNC_REPLICAS", "3")
    monkeypatch.setenv("SYNAPSEOPS_REPLAY_LEASE_S", "12")
    settings = Settings()
    assert settings.topic_replication == (4, 3)
    assert settings.replay.lease_s == 12


def test_a_lease_is_renewed_well_within_itself() -> None:
    with pytest.raises(ValidationError, match="half the lease"):
        ReplaySettings(lease_s=4, heartbeat_s=3)


def test_a_restart_backoff_only_grows() -> None:
    with pytest.raises(ValidationError, match="below the initial"):
        SupervisionSettings(backoff_initial_s=10, backoff_max_s=1)
