import pytest

from synapseops.errors import ConfigurationError
from synapseops.settings import DEFAULT_DEV_API_TOKEN, Settings, parse_duration


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("SYNAPSEOPS_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no stray .env from the checkout


def test_fixed_environment_names_reach_their_sections(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNAPSEOPS_KAFKA_BOOTSTRAP", "broker-a:19092")
    monkeypatch.setenv("SYNAPSEOPS_DATABASE_URL", "postgresql+psycopg2://u:pw@db:5432/x")
    monkeypatch.setenv("SYNAPSEOPS_API_TOKEN", "s3cret")
    monkeypatch.setenv("SYNAPSEOPS_RETRY_TIERS", "1s,2s,500ms")
    monkeypatch.setenv("SYNAPSEOPS_STRIPE_WEBHOOK_SECRET", "whsec_old, whsec_new")
    settings = Settings()
    assert settings.kafka.bootstrap == "broker-a:19092"
    assert (settings.kafka.host, settings.kafka.port) == ("broker-a", 19092)
    assert settings.database_url == "postgresql+psycopg2://u:pw@db:5432/x"
    assert not settings.uses_local_database
    assert settings.api.token.get_secret_value() == "s3cret"
    assert settings.retry.delays == (1.0, 2.0, 0.5)
    assert settings.stripe.secrets == ["whsec_old", "whsec_new"]


def test_dotenv_file_is_read(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("SYNAPSEOPS_API_PORT=8111\nSYNAPSEOPS_ENV=test\n")
    settings = Settings()
    assert settings.api.port == 8111
    assert settings.env == "test"


def test_defaults_point_at_the_local_stack() -> None:
    settings = Settings()
    assert settings.kafka.bootstrap == "127.0.0.1:9092"
    assert settings.uses_local_database
    assert ":15432/" in settings.database_url
    assert settings.retry.delays == (10.0, 60.0, 300.0)


def test_secrets_never_print() -> None:
    settings = Settings(api={"token": "very-secret-token"})  # type: ignore[arg-type]
    assert "very-secret-token" not in repr(settings)
    assert "very-secret-token" not in str(settings.model_dump())


def test_outside_dev_the_default_token_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNAPSEOPS_ENV", "prod")
    with pytest.raises(ConfigurationError, match="SYNAPSEOPS_API_TOKEN"):
        Settings().require_safe_secrets()
    monkeypatch.setenv("SYNAPSEOPS_API_TOKEN", "a-real-token")
    monkeypatch.setenv("SYNAPSEOPS_CREDENTIALS_KEY", "k" * 44)
    Settings().require_safe_secrets()
    assert Settings().api.token.get_secret_value() != DEFAULT_DEV_API_TOKEN


def test_dev_mode_accepts_the_default_token() -> None:
    Settings().require_safe_secrets()


@pytest.mark.parametrize(
    ("text", "seconds"), [("10s", 10.0), ("250ms", 0.25), ("5m", 300.0), ("1h", 3600.0), ("7", 7.0)]
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_bad_retry_tiers_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNAPSEOPS_RETRY_TIERS", "10s,soon")
    with pytest.raises(ValueError, match="not a duration"):
        Settings()


def test_demo_stripe_secret_only_in_dev(monkeypatch: pytest.MonkeyPatch) -> None:
    from synapseops.settings import DEFAULT_DEV_STRIPE_SECRET

    assert Settings().stripe.secrets == [DEFAULT_DEV_STRIPE_SECRET]
    monkeypatch.setenv("SYNAPSEOPS_ENV", "prod")
    assert Settings().stripe.secrets == []
    monkeypatch.setenv("SYNAPSEOPS_STRIPE_WEBHOOK_SECRET", "whsec_real")
    assert Settings().stripe.secrets == ["whsec_real"]


def test_outside_dev_the_public_stripe_secret_is_dropped_also_among_several(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from synapseops.settings import DEFAULT_DEV_STRIPE_SECRET

    monkeypatch.setenv("SYNAPSEOPS_ENV", "prod")
    monkeypatch.setenv(
        "SYNAPSEOPS_STRIPE_WEBHOOK_SECRET", f"whsec_own, {DEFAULT_DEV_STRIPE_SECRET}"
    )
    assert Settings().stripe.secrets == ["whsec_own"]
    monkeypatch.setenv("SYNAPSEOPS_STRIPE_WEBHOOK_SECRET", DEFAULT_DEV_STRIPE_SECRET)
    assert Settings().stripe.secrets == []
    monkeypatch.setenv("SYNAPSEOPS_ENV", "dev")
    assert Settings().stripe.secrets == [DEFAULT_DEV_STRIPE_SECRET]


def test_outside_dev_the_public_source_token_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    from synapseops.settings import DEFAULT_DEV_SOURCE_TOKEN

    assert set(Settings().ingress.sources) == {"github", "otel", "shopify", "stripe"}
    monkeypatch.setenv("SYNAPSEOPS_ENV", "prod")
    assert Settings().ingress.sources == {}
    monkeypatch.setenv(
        "SYNAPSEOPS_INGRESS_SOURCES",
        '{"gh": {"scheme": "hmac_hex", "secret": "own,' + DEFAULT_DEV_SOURCE_TOKEN + '",'
        ' "header": "X-Hub-Signature-256"}, "demo": {"scheme": "token", "secret": "'
        + DEFAULT_DEV_SOURCE_TOKEN
        + '"}}',
    )
    sources = Settings().ingress.sources
    assert set(sources) == {"gh"}
    assert sources["gh"].secrets == ["own"] and sources["gh"].header == "X-Hub-Signature-256"


def test_the_finance_ledger_follows_the_sandbox_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    # Found running `make demo` on other ports: the worker kept booking on 127.0.0.1:8100.
    monkeypatch.setenv("SYNAPSEOPS_SANDBOX_PORT", "37100")
    monkeypatch.delenv("SYNAPSEOPS_PAYMENTS_FINANCE_URL", raising=False)
    assert Settings().finance_url == "http://127.0.0.1:37100/finance"
    monkeypatch.setenv("SYNAPSEOPS_PAYMENTS_FINANCE_URL", "https://ledger.example/api")
    assert Settings().finance_url == "https://ledger.example/api"
