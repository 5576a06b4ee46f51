"""Sample traffic for the demo: real public payloads sent through the real ingress.

Each sample is sent under a fresh event id (so every demo run adds rows) and one of them twice
(to show that a duplicate delivery is absorbed, not stored twice).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from synapseops.ids import new_id, new_traceparent
from synapseops.settings import PROJECT_ROOT, Settings

SAMPLES = PROJECT_ROOT / "samples"


@dataclass(frozen=True)
class Sample:
    source: str
    event_type: str
    entity_key: str
    body: bytes


def _entity_of(source: str, payload: dict[str, object]) -> str:
    if source == "stripe":
        obj = payload.get("data", {}).get("object", {})  # type: ignore[union-attr]
        return str(obj.get("payment_intent") or obj.get("id"))  # type: ignore[union-attr]
    if source == "github":
        repo = payload.get("repository", {})
        return str(repo.get("full_name", "github"))  # type: ignore[union-attr]
    if source == "shopify":
        return f"order-{payload.get('order', payload).get('id')}"  # type: ignore[union-attr]
    return source


def load_samples(folder: Path = SAMPLES) -> list[Sample]:
    samples = []
    for path in sorted(folder.rglob("*.json")):
        source = path.relative_to(folder).parts[0]
        payload = json.loads(path.read_bytes())
        event_type = str(payload.get("type") or path.stem)
        samples.append(Sample(source, event_type, _entity_of(source, payload), path.read_bytes()))
    if not samples:
        raise FileNotFoundError(f"no sample payloads under {folder}")
    return samples


def deliveries(samples: list[Sample], rounds: int) -> Iterator[tuple[str, Sample]]:
    """``(event_id, sample)`` pairs: every sample once per round, then one duplicate."""
    first: tuple[str, Sample] | None = None
    for _ in range(rounds):
        for sample in samples:
            event_id = new_id(f"demo-{sample.source}")
            first = first or (event_id, sample)
            yield event_id, sample
    if first is not None:
        yield first


def send(client: httpx.Client, api_url: str, event_id: str, sample: Sample) -> httpx.Response:
    return client.post(
        f"{api_url}/webhooks/events/{sample.source}",
        content=sample.body,
        headers={
            "Content-Type": "application/json",
            "Idempotency-Key": event_id,
            "X-Entity-Key": sample.entity_key,
            "X-Event-Type": sample.event_type,
            "traceparent": new_traceparent(),
        },
    )


def wait_for_rows(
    client: httpx.Client, settings: Settings, event_ids: set[str], timeout: float = 60.0
) -> list[dict[str, object]]:
    """Poll the management API until every event id has its row (or the time is up)."""
    token = settings.api.token.get_secret_value()
    found: dict[str, dict[str, object]] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(found) < len(event_ids):
        response = client.get(
            f"{settings.api.url}/api/v1/events",
            params={"limit": 500},
            headers={"Authorization": f"Bearer {token}"},
        )
        response.raise_for_status()
        body = response.json()
        rows = body["items"] if isinstance(body, dict) else body
        for row in rows:
            if row["event_id"] in event_ids:
                found[row["event_id"]] = row
        if len(found) < len(event_ids):
            time.sleep(0.5)
    return list(found.values())
