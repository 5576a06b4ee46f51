"""The console's pure parts: filters, chart data, the service registry's contract, templates
that compile and escape what they show."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from api.access import _routes
from api.console import services as services_package
from api.console.registry import ServicePages
from api.console.render import Pages, age, duration, money, pretty, stamp
from api.console.services import SERVICES
from api.console.services.aggregation.pages import minute_charts
from api.console.services.crm.pages import direction_summary
from api.console.services.integration.mappings import rule_lines
from api.console.services.integration.pages import success_chart
from api.console.services.payments.pages import volume_chart
from api.routes.payments.settlement_models import DailyVolume

CONSOLE_SERVICES = Path(services_package.__file__).resolve().parent


def test_people_read_ages_and_money_in_their_units() -> None:
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert age(now - timedelta(seconds=42), now) == "42s"
    assert age(now - timedelta(minutes=5), now) == "5m"
    assert age(now - timedelta(hours=2, minutes=5), now) == "2h 5m"
    assert age(now - timedelta(days=3, hours=1), now) == "3d 1h"
    assert age(None) == "—"
    assert money(125000, "usd") == "1,250.00 USD"
    assert money(1500, "JPY") == "1,500 JPY"
    assert money(None, "EUR") == "—"
    assert stamp("2026-12-01T19:55:20.883180+00:00") == "2026-12-01 19:55:20 UTC"
    assert pretty('{"a": 1}') == '{\n  "a": 1\n}' and pretty("not json") == "not json"


def test_the_volume_chart_has_a_point_per_day_and_a_series_per_currency_and_state() -> None:
    today = datetime.now(UTC).date()
    rows = [
        DailyVolume(day=today, currency="USD", state="settled", count=2, amount=12345),
        DailyVolume(day=today, currency="JPY", state="settled", count=1, amount=500),
    ]
    chart = volume_chart(rows, days=3)
    assert len(chart["x"]) == 3
    assert [s["label"] for s in chart["series"]] == ["JPY settled", "USD settled"]
    assert chart["series"][0]["values"] == [0, 0, 500.0]
    assert chart["series"][1]["values"] == [0, 0, 123.45]
    assert volume_chart([], days=3) == {"x": [], "series": []}


def test_the_success_chart_rates_finished_runs_and_leaves_gaps_where_none_finished() -> None:
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    rows = [
        {"flow_id": 1, "hour": hour, "succeeded": 3, "finished": 4},
        {"flow_id": 1, "hour": hour - timedelta(hours=1), "succeeded": 0, "finished": 0},
    ]
    chart = success_chart(rows, {1: "orders"}, hours=3)
    assert chart["percent"] and chart["series"][0]["label"] == "orders"
    assert chart["series"][0]["values"] == [None, None, 75.0]


def test_a_diff_shows_one_line_per_rule() -> None:
    spec = {"rules": [{"target": "a", "source": "x"}, {"target": "b", "const": "ü"}]}
    assert rule_lines(spec) == ['{"target": "a", "source": "x"}', '{"target": "b", "const": "ü"}']


def test_every_service_is_one_package_with_its_router_tabs_and_templates() -> None:
    slugs = [service.slug for service in SERVICES]
    assert slugs == [
        "api-integration",
        "payment-gateway",
        "crm-automation",
        "data-aggregation",
        "notifications",
    ]
    assert len(set(slugs)) == len(slugs)
    assert [service.service for service in SERVICES] == [
        "integration",
        "payments",
        "crm",
        "aggregation",
        "notifications",
    ]
    for service in SERVICES:
        assert isinstance(service, ServicePages)
        # named by its service, as in every layer: the package and its templates folder
        assert service.templates.parent == CONSOLE_SERVICES / service.service
        assert (service.templates / service.service).is_dir()
        assert service.tabs[0].path == service.href
        assert all(tab.path.startswith(service.href) for tab in service.tabs)
        paths = {route.path for route in _routes(service.router)}
        assert service.href in paths, paths
        assert service.home_card is not None and service.pipelines


def test_every_template_compiles_and_what_it_shows_is_escaped() -> None:
    pages = Pages([service.templates for service in SERVICES], [("Home", "/")], SERVICES)
    names = pages.env.list_templates(extensions=["html"])
    assert len(names) >= 25
    pages.warm()
    html = pages.env.from_string("{% from '_macros.html' import badge %}{{ badge(x) }}").render(
        x="<script>alert(1)</script>"
    )
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_a_crm_field_pair_reads_as_its_steps_toward_each_side() -> None:
    pair = {
        "salesforce": "LeadSource",
        "hubspot": "hs_lead_source",
        "to_hubspot": [{"op": "lookup", "table": {"Web": "ORGANIC_SEARCH"}}, "to_str"],
        "hubspot_default": "n/a",
    }
    assert direction_summary(pair, "hubspot") == "map Web→ORGANIC_SEARCH; to_str; default 'n/a'"
    assert direction_summary(pair, "salesforce") == "—"


def test_latencies_read_in_the_unit_that_keeps_them_short() -> None:
    assert [duration(s) for s in (0.0123, 0.85, 4.25, 59.9, 754.2, 7384.23, 3 * 86400 + 5)] == [
        "12 ms",
        "850 ms",
        "4.2 s",
        "60 s",
        "13 min",
        "2.1 h",
        "3.0 d",
    ]
    assert duration(None) == "—" and duration(Decimal("31536000")) == "365 d"


def test_the_run_health_charts_have_every_minute_and_gaps_where_none_came() -> None:
    now = datetime(2026, 1, 1, 12, 30, 40, tzinfo=UTC)
    rows = [
        {"minute": "2026-01-01T12:27:00+00:00", "events": 4, "p50_s": 1.0, "p99_s": 7384.2},
        {"minute": datetime(2026, 1, 1, 12, 30, tzinfo=UTC), "events": 1, "p99_s": 0.2},
    ]
    charts = minute_charts({"logs": rows}, now, minutes=5)
    volume, latency = charts["volume"], charts["latency"]
    start = int(datetime(2026, 1, 1, 12, 26, tzinfo=UTC).timestamp())
    assert volume["x"] == [start + 60 * n for n in range(5)] == latency["x"]
    assert volume["series"] == [{"label": "logs", "values": [None, 4, None, None, 1]}]
    assert latency["series"][0]["values"] == [None, 7384.2, None, None, 0.2]
    assert latency["unit"] == "s"
    assert minute_charts({"logs": []}, now, minutes=5)["volume"] == {
        "x": [],
        "series": [{"label": "logs", "values": [None] * 5}],
    }
