"""GitHub events polled the way GitHub asks (https://docs.github.com/rest/activity/events),
as a family of the shared poller (:mod:`streams.polling`).

A ``poll`` source with logic ``github`` names its timeline in ``config``::

    {"url": "https://api.github.com/repos/octo/hello/events",  # or /orgs/{org}/events
     "per_page": 100,          # 1-100 [100]
     "token": "..."}           # optional; sent as Authorization: Bearer

- **ETag / 304**: every poll sends ``If-None-Match`` with the ETag of the last first page; a
  304 publishes nothing and costs no rate limit.
- **X-Poll-Interval**: the source is polled no more often than GitHub says (nor than its own
  ``schedule_s``).
- **the 300-event window**: pages are followed (``Link: rel="next"``) until an event already
  published shows up, at most 300 events back: older ones GitHub no longer serves (a 422 past
  it). Events are published oldest first, each with its own id (the de-duplication key).
- **cursor**: ``{etag, newest_id, poll_interval_s}``, advanced only once the events are durable
  on ``aggregation.raw`` (the poller's order); a crash in between publishes them again with the
  same ids, which the pipeline skips as duplicates.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import sqlalchemy

from sinks.aggregation.jobs import progress, start_job
from sinks.aggregation.sources import polled_sources, save_cursor
from sinks.http import HttpTarget
from streams.aggregation.raw import raw_headers
from streams.polling import Page, PolledRecord
from synapseops.errors import TargetRejected
from synapseops.ids import new_traceparent
from synapseops.settings import Settings
from topics.registry import AGGREGATION_RAW

# Advisory-lock namespace of polled data sources (second key: 31 bits of the source's id).
POLL_LOCK_CLASS = 7343
WINDOW = 300
DEFAULT_INTERVAL_S = 60.0
_NEXT = re.compile(r'<([^>]+)>;\s*rel="next"')


@dataclass(frozen=True)
class PolledGitHub:
    source_id: uuid.UUID
    name: str
    url: str
    per_page: int
    token: str | None
    schedule_s: float
    cursor: Mapping[str, Any] | None

    @property
    def key(self) -> int:
        return self.source_id.int & 0x7FFF_FFFF

    @property
    def interval_s(self) -> float:
        asked = float((self.cursor or {}).get("poll_interval_s") or 0)
        return max(self.schedule_s, asked)

    @property
    def where(self) -> Mapping[str, str]:
        return {"source": self.name}


def config_problems(config: Mapping[str, Any]) -> list[str]:
    problems = []
    url = config.get("url")
    if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https"):
        problems.append("config.url must be an http(s) URL of an events timeline")
    per_page = config.get("per_page", 100)
    if not isinstance(per_page, int) or not 1 <= per_page <= 100:
        problems.append("config.per_page must be 1-100")
    return problems


def _id(event: Mapping[str, Any]) -> int:
    try:
        return int(event.get("id", 0))
    except (TypeError, ValueError):
        return 0


class GitHubSources:
    kind = "github"
    lock_class = POLL_LOCK_CLASS

    def __init__(self, engine: sqlalchemy.Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings

    def listing(self) -> tuple[Sequence[PolledGitHub], Mapping[str, list[str]]]:
        valid, invalid = [], {}
        for row in polled_sources(self.engine, "github"):
            config = row["config"] or {}
            problems = config_problems(config)
            if problems:
                invalid[row["name"]] = problems
                continue
            valid.append(
                PolledGitHub(
                    source_id=row["id"],
                    name=row["name"],
                    url=config["url"],
                    per_page=config.get("per_page", 100),
                    token=config.get("token"),
                    schedule_s=float(row["schedule_s"] or DEFAULT_INTERVAL_S),
                    cursor=row["cursor"],
                )
            )
        return valid, invalid

    async def fetch(self, source: PolledGitHub) -> Page:
        cursor = dict(source.cursor or {})
        newest = int(cursor.get("newest_id") or 0)
        headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
        if source.token:
            headers["Authorization"] = f"Bearer {source.token}"
        target = HttpTarget.for_connector(source.name, source.url, self.settings)
        fresh: list[dict[str, Any]] = []
        try:
            url: str | None = f"{source.url}?{urlencode({'per_page': source.per_page})}"
            first = True
            while url is not None and len(fresh) < WINDOW:
                sent = headers | (
                    {"If-None-Match": cursor["etag"]} if first and cursor.get("etag") else {}
                )
                try:
                    answer = await target.request("GET", url, headers=sent)
                except TargetRejected as exc:
                    if first and exc.status == 304:  # nothing new; costs no rate limit
                        cursor["poll_interval_s"] = _interval(exc.headers, cursor)
                        return Page([], cursor)
                    raise
                if first:
                    cursor["etag"] = answer.headers.get("etag")
                    cursor["poll_interval_s"] = _interval(answer.headers, cursor)
                    first = False
                page = answer.json() or []
                new = [event for event in page if _id(event) > newest]
                fresh.extend(new)
                older_seen = len(new) < len(page) or not page
                match = _NEXT.search(answer.headers.get("link", ""))
                url = None if older_seen or match is None else match.group(1)
        finally:
            await target.aclose()
        fresh = sorted({_id(event): event for event in fresh[:WINDOW]}.values(), key=_id)
        if fresh:
            cursor["newest_id"] = str(_id(fresh[-1]))
        cursor["last_count"] = len(fresh)
        return Page([self._record(source, event) for event in fresh], cursor)

    def _record(self, source: PolledGitHub, event: Mapping[str, Any]) -> PolledRecord:
        headers = raw_headers(
            source=source.name,
            logic="github",
            source_type="api_polling",
            event_id=str(event.get("id")),
            event_type=str(event.get("type")),
            traceparent=new_traceparent(),
        )
        repo = (event.get("repo") or {}).get("name") or source.name
        return PolledRecord(
            topic=AGGREGATION_RAW.name,
            key=f"{source.name}/{repo}".encode(),
            value=json.dumps(event, separators=(",", ":")).encode(),
            headers=headers,
        )

    def advance(self, source: PolledGitHub, cursor: Any) -> None:
        count = int(cursor.get("last_count") or 0)
        save_cursor(self.engine, source.source_id, cursor)
        if count:  # a poll cycle that brought events is an IngestionJob of its own
            job = start_job(self.engine, source.name, "poll")
            progress(
                self.engine,
                job,
                records_in=count,
                records_out=count,
                records_failed=0,
                bytes_done=0,
                state="succeeded",
            )


def _interval(headers: Mapping[str, str], cursor: Mapping[str, Any]) -> float:
    try:
        return float(headers.get("x-poll-interval") or cursor.get("poll_interval_s") or 0)
    except ValueError:
        return float(cursor.get("poll_interval_s") or 0)
