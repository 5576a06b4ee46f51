"""The GitHub Events API shape: event objects, ETag/304, paging, the window, rate limits."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from sandbox.harness import app_client
from sandbox.samples import load

REPO = "/github/repos/Codertocat/Hello-World/events"
TOKEN = {"Authorization": "Bearer ghp_sandbox"}


@pytest.fixture
def gh() -> Iterator[TestClient]:
    yield app_client()


def test_the_fixtures_events_are_shaped_like_the_events_api(gh: TestClient) -> None:
    answer = gh.get(REPO, headers=TOKEN)
    assert answer.status_code == 200
    events = answer.json()
    assert [e["type"] for e in events] == [
        "DeleteEvent",
        "ReleaseEvent",
        "PullRequestEvent",
        "IssuesEvent",
        "PushEvent",
        "CreateEvent",
    ]
    ids = [int(e["id"]) for e in events]
    assert ids == sorted(ids, reverse=True) and all(isinstance(e["id"], str) for e in events)
    issue_hook = load("github/issues.opened.json")
    issues = events[3]
    assert set(issues) == {"id", "type", "actor", "repo", "payload", "public", "created_at"}
    assert issues["repo"] == {
        "id": issue_hook["repository"]["id"],
        "name": "Codertocat/Hello-World",
        "url": "https://api.github.com/repos/Codertocat/Hello-World",
    }
    assert issues["actor"]["login"] == issue_hook["sender"]["login"]
    assert set(issues["actor"]) == {
        "id",
        "login",
        "display_login",
        "gravatar_id",
        "url",
        "avatar_url",
    }
    assert issues["payload"] == {"action": "opened", "issue": issue_hook["issue"]}
    push = events[4]["payload"]
    assert set(push) == {
        "repository_id",
        "push_id",
        "size",
        "distinct_size",
        "ref",
        "head",
        "before",
        "commits",
    }
    assert push["head"] == load("github/push.with-new-branch.json")["after"]
    assert events[0]["payload"]["ref_type"] == "tag"
    assert datetime.strptime(events[0]["created_at"], "%Y-%m-%dT%H:%M:%SZ")
    org = gh.get("/github/orgs/octo-org/events").json()
    assert [e["type"] for e in org] == ["WatchEvent"] and org[0]["org"]["login"] == "octo-org"


def test_etag_answers_304_that_costs_no_rate_limit_until_new_events_arrive(gh: TestClient) -> None:
    first = gh.get(REPO, headers=TOKEN)
    etag = first.headers["ETag"]
    assert etag.startswith('W/"') and first.headers["X-Poll-Interval"] == "60"
    remaining = int(first.headers["X-RateLimit-Remaining"])
    same = gh.get(REPO, headers={**TOKEN, "If-None-Match": etag})
    assert same.status_code == 304 and same.content == b""
    assert int(same.headers["X-RateLimit-Remaining"]) == remaining
    assert same.headers["ETag"] == etag and same.headers["X-Poll-Interval"] == "60"

    made = gh.post(
        "/_sandbox/github/events", json={"repo": "Codertocat/Hello-World", "count": 2, "seed": 1}
    )
    assert made.status_code == 201
    new = gh.get(REPO, headers={**TOKEN, "If-None-Match": etag})
    assert new.status_code == 200 and new.headers["ETag"] != etag
    assert [e["id"] for e in new.json()[:2]] == [e["id"] for e in reversed(made.json()["events"])]
    assert int(new.headers["X-RateLimit-Remaining"]) == remaining - 1
    gh.put("/_sandbox/limits", json={"github": {"poll_interval_s": 1}})
    assert gh.get(REPO).headers["X-Poll-Interval"] == "1"


def test_pages_links_and_the_300_event_window(gh: TestClient) -> None:
    gh.post(
        "/_sandbox/github/events", json={"repo": "Codertocat/Hello-World", "count": 400, "seed": 2}
    )
    default = gh.get(REPO, headers=TOKEN)
    assert len(default.json()) == 30
    assert 'rel="next"' in default.headers["Link"] and "page=10" in default.headers["Link"]
    biggest = gh.get(REPO, params={"per_page": 500}, headers=TOKEN)
    assert len(biggest.json()) == 100
    seen = []
    for page in (1, 2, 3):
        answer = gh.get(REPO, params={"per_page": 100, "page": page}, headers=TOKEN)
        seen += [e["id"] for e in answer.json()]
    assert len(set(seen)) == 300
    assert 'rel="prev"' in answer.headers["Link"] and 'rel="next"' not in answer.headers["Link"]
    past = gh.get(REPO, params={"per_page": 100, "page": 4}, headers=TOKEN)
    assert past.status_code == 422 and "pagination is limited" in past.json()["message"]


def test_events_older_than_90_days_leave_the_timeline(gh: TestClient) -> None:
    old = (datetime.now(UTC) - timedelta(days=91)).isoformat()
    made = gh.post(
        "/_sandbox/github/events", json={"repo": "acme/api", "org": True, "created_at": old}
    )
    assert made.status_code == 201
    assert gh.get("/github/repos/acme/api/events").json() == []
    gh.post("/_sandbox/github/events", json={"repo": "acme/api", "types": ["WatchEvent"]})
    (event,) = gh.get("/github/orgs/acme/events").json()
    assert event["type"] == "WatchEvent" and event["org"]["login"] == "acme"
    assert len(gh.get("/_sandbox/github/events", params={"repo": "acme/api"}).json()["events"]) == 2


def test_unknown_repositories_and_the_rate_limit(gh: TestClient) -> None:
    missing = gh.get("/github/repos/nobody/nothing/events")
    assert missing.status_code == 404 and missing.json()["message"] == "Not Found"
    # The 404 counted too: three requests an hour leave two.
    gh.put("/_sandbox/limits", json={"github": {"unauthenticated_per_window": 3}})
    answers = [gh.get(REPO) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 403]
    assert [a.headers["X-RateLimit-Remaining"] for a in answers] == ["1", "0", "0"]
    assert answers[2].json()["message"].startswith("API rate limit exceeded for")
    reset = int(answers[2].headers["X-RateLimit-Reset"])
    assert reset > datetime.now(UTC).timestamp()
    assert gh.get(REPO, headers=TOKEN).status_code == 200  # a token has its own quota
    assert gh.get("/github/rate_limit").json()["resources"]["core"]["remaining"] == 0
    gh.put("/_sandbox/limits", json={"github": {"exceeded_status": 429}})
    assert gh.get(REPO).status_code == 429
    unknown = gh.post("/_sandbox/github/events", json={"repo": "a/b", "types": ["GollumEvent"]})
    assert unknown.status_code == 422
