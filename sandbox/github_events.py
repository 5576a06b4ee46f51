"""GitHub's event timelines, built from the octokit webhook examples in ``samples/github``.

Events are shaped as the Events API serves them: ``{id (string), type, actor {id, login,
display_login, gravatar_id, url, avatar_url}, repo {id, name, url}, payload, public,
created_at, org?}``. Payloads per type: ``PushEvent`` ``{repository_id, push_id, size,
distinct_size, ref, head, before, commits [{sha, author {email, name}, message, distinct,
url}]}``, ``CreateEvent`` / ``DeleteEvent`` ``{ref, ref_type, ...}``, ``IssuesEvent`` ``{action,
issue}``, ``PullRequestEvent`` ``{action, number, pull_request}``, ``ReleaseEvent`` ``{action,
release}``, ``WatchEvent`` ``{action: "started"}``. A fresh sandbox holds the examples'
events for ``Codertocat/Hello-World`` and ``octo-org/octo-repo``; :meth:`GitHubEvents.generate`
appends realistic new ones (new numbers, shas, titles) so a poller sees them arrive.
"""

from __future__ import annotations

import copy
import itertools
import random
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sandbox.samples import load

API = "https://api.github.com"
TYPES = (
    "PushEvent",
    "CreateEvent",
    "IssuesEvent",
    "PullRequestEvent",
    "ReleaseEvent",
    "WatchEvent",
    "DeleteEvent",
)
_ACTORS = (("Codertocat", 21031067), ("octocat", 583231), ("hubot", 480938), ("monalisa", 2154))


@dataclass
class Repo:
    id: int
    full_name: str
    org: dict[str, Any] | None = None

    def ref(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.full_name, "url": f"{API}/repos/{self.full_name}"}

    @property
    def owner(self) -> str:
        return self.full_name.split("/", 1)[0]


def actor(login: str, user_id: int) -> dict[str, Any]:
    return {
        "id": user_id,
        "login": login,
        "display_login": login,
        "gravatar_id": "",
        "url": f"{API}/users/{login}",
        "avatar_url": f"https://avatars.githubusercontent.com/u/{user_id}?",
    }


def _org(organization: dict[str, Any]) -> dict[str, Any]:
    login = organization["login"]
    return {
        "id": organization["id"],
        "login": login,
        "gravatar_id": "",
        "url": f"{API}/orgs/{login}",
        "avatar_url": organization["avatar_url"],
    }


def _commits(repo: Repo, webhook_commits: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "sha": c["id"],
            "author": {"email": c["author"]["email"], "name": c["author"]["name"]},
            "message": c["message"],
            "distinct": c["distinct"],
            "url": f"{API}/repos/{repo.full_name}/commits/{c['id']}",
        }
        for c in webhook_commits
    ]


class GitHubEvents:
    """Repositories and their events, oldest first (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._ids = itertools.count(41_000_000_001)
            self._numbers = itertools.count(1000)
            self.repos: dict[str, Repo] = {}
            self.events: list[dict[str, Any]] = []
            self._templates = self._load_templates()
            start = datetime.now(UTC) - timedelta(minutes=30)
            for offset, (repo, kind, payload, sender) in enumerate(self._examples()):
                self._append(
                    repo,
                    kind,
                    payload,
                    actor(sender["login"], sender["id"]),
                    start + timedelta(minutes=offset),
                )

    def _load_templates(self) -> dict[str, dict[str, Any]]:
        names = (
            "push.with-new-branch",
            "push",
            "issues.opened",
            "pull_request.opened",
            "release.published",
            "workflow_run.completed",
        )
        return {name: load(f"github/{name}.json") for name in names}

    def ensure_repo(self, full_name: str, org: bool = False) -> Repo:
        """Create a repository (an organisation's when ``org``) unless it exists."""
        owner = full_name.split("/", 1)[0]
        org_id = 90_000_000 + sum(map(ord, owner))
        organization = {
            "id": org_id,
            "login": owner,
            "avatar_url": f"https://avatars.githubusercontent.com/u/{org_id}?",
        }
        with self._lock:
            return self._repo(full_name, organization if org else None)

    def _repo(self, full_name: str, organization: dict[str, Any] | None = None) -> Repo:
        """The repository, created (with a stable id) the first time it is named."""
        key = full_name.lower()
        if key not in self.repos:
            repo_id = 500_000_000 + sum(ord(c) * (i + 1) for i, c in enumerate(key)) % 10**8
            self.repos[key] = Repo(repo_id, full_name, _org(organization) if organization else None)
        return self.repos[key]

    def _examples(self) -> list[tuple[Repo, str, dict[str, Any], dict[str, Any]]]:
        t = self._templates
        hello = t["issues.opened"]["repository"]
        repo = self.repos.setdefault(
            hello["full_name"].lower(), Repo(hello["id"], hello["full_name"])
        )
        run = t["workflow_run.completed"]
        org_repo = run["repository"]
        self.repos[org_repo["full_name"].lower()] = Repo(
            org_repo["id"], org_repo["full_name"], _org(run["organization"])
        )
        push = t["push.with-new-branch"]
        deleted = t["push"]
        return [
            (
                repo,
                "CreateEvent",
                {
                    "ref": "master",
                    "ref_type": "branch",
                    "master_branch": "master",
                    "description": None,
                    "pusher_type": "user",
                },
                push["sender"],
            ),
            (repo, "PushEvent", self._push_payload(repo, push), push["sender"]),
            (
                repo,
                "IssuesEvent",
                {"action": "opened", "issue": t["issues.opened"]["issue"]},
                t["issues.opened"]["sender"],
            ),
            (
                repo,
                "PullRequestEvent",
                {
                    "action": "opened",
                    "number": t["pull_request.opened"]["number"],
                    "pull_request": t["pull_request.opened"]["pull_request"],
                },
                t["pull_request.opened"]["sender"],
            ),
            (
                repo,
                "ReleaseEvent",
                {"action": "published", "release": t["release.published"]["release"]},
                t["release.published"]["sender"],
            ),
            (
                repo,
                "DeleteEvent",
                {
                    "ref": deleted["ref"].removeprefix("refs/tags/"),
                    "ref_type": "tag",
                    "pusher_type": "user",
                },
                deleted["sender"],
            ),
            (
                self.repos[org_repo["full_name"].lower()],
                "WatchEvent",
                {"action": "started"},
                run["sender"],
            ),
        ]

    def _push_payload(self, repo: Repo, push: dict[str, Any]) -> dict[str, Any]:
        commits = _commits(repo, push["commits"])
        return {
            "repository_id": repo.id,
            "push_id": next(self._numbers) + 6_000_000_000,
            "size": len(commits),
            "distinct_size": sum(1 for c in commits if c["distinct"]),
            "ref": push["ref"],
            "head": push["after"],
            "before": push["before"],
            "commits": commits,
        }

    def _append(
        self, repo: Repo, kind: str, payload: dict[str, Any], who: dict[str, Any], at: datetime
    ) -> dict[str, Any]:
        event: dict[str, Any] = {
            "id": str(next(self._ids)),
            "type": kind,
            "actor": who,
            "repo": repo.ref(),
            "payload": payload,
            "public": True,
            "created_at": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        if repo.org is not None:
            event["org"] = repo.org
        self.events.append(event)
        return event

    def add(self, event: dict[str, Any], repo_name: str) -> dict[str, Any]:
        """Append a ready-made event (``repo``, ``id`` and ``created_at`` filled in if absent)."""
        with self._lock:
            repo = self._repo(repo_name)
            made = {"id": str(next(self._ids)), "public": True, **copy.deepcopy(event)}
            made.setdefault("repo", repo.ref())
            made.setdefault("created_at", datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
            if repo.org is not None:
                made.setdefault("org", repo.org)
            self.events.append(made)
            return made

    def generate(
        self, repo_name: str, count: int, kinds: list[str], rng: random.Random, at: datetime | None
    ) -> list[dict[str, Any]]:
        with self._lock:
            repo = self._repo(repo_name)
            made = []
            for _ in range(count):
                kind = rng.choice(kinds)
                login, user_id = rng.choice(_ACTORS)
                payload = self._payload(repo, kind, rng)
                made.append(
                    self._append(
                        repo, kind, payload, actor(login, user_id), at or datetime.now(UTC)
                    )
                )
            return made

    def _payload(self, repo: Repo, kind: str, rng: random.Random) -> dict[str, Any]:
        t, number = self._templates, next(self._numbers)
        if kind == "PushEvent":
            push = copy.deepcopy(t["push.with-new-branch"])
            sha = f"{rng.getrandbits(160):040x}"
            push["commits"][0] |= {"id": sha, "message": f"Update README ({number})"}
            push |= {"before": f"{rng.getrandbits(160):040x}", "after": sha}
            return self._push_payload(repo, push)
        if kind == "CreateEvent":
            return {
                "ref": f"feature-{number}",
                "ref_type": "branch",
                "master_branch": "master",
                "description": None,
                "pusher_type": "user",
            }
        if kind == "DeleteEvent":
            return {"ref": f"feature-{number}", "ref_type": "branch", "pusher_type": "user"}
        if kind == "IssuesEvent":
            issue = copy.deepcopy(t["issues.opened"]["issue"])
            issue |= {
                "id": 400_000_000 + number,
                "number": number,
                "title": f"Spelling error #{number}",
                "url": f"{API}/repos/{repo.full_name}/issues/{number}",
            }
            return {"action": rng.choice(("opened", "closed", "reopened")), "issue": issue}
        if kind == "PullRequestEvent":
            pull = copy.deepcopy(t["pull_request.opened"]["pull_request"])
            pull |= {
                "id": 200_000_000 + number,
                "number": number,
                "title": f"Update the README ({number})",
                "url": f"{API}/repos/{repo.full_name}/pulls/{number}",
            }
            return {
                "action": rng.choice(("opened", "closed")),
                "number": number,
                "pull_request": pull,
            }
        if kind == "ReleaseEvent":
            release = copy.deepcopy(t["release.published"]["release"])
            release |= {
                "id": 17_000_000 + number,
                "tag_name": f"v0.{number}.0",
                "name": f"v0.{number}.0",
            }
            return {"action": "published", "release": release}
        return {"action": "started"}

    def timeline(
        self, repo_name: str | None, org: str | None, window_days: int, cap: int
    ) -> list[dict[str, Any]]:
        """The newest ``cap`` events of a repo, an org or everything, within ``window_days``."""
        oldest = (datetime.now(UTC) - timedelta(days=window_days)).strftime("%Y-%m-%dT%H:%M:%SZ")
        with self._lock:
            found = []
            for event in reversed(self.events):
                if repo_name and event["repo"]["name"].lower() != repo_name.lower():
                    continue
                if org and str(event.get("org", {}).get("login", "")).lower() != org.lower():
                    continue
                if event["created_at"] >= oldest:
                    found.append(event)
                if len(found) == cap:
                    break
            return copy.deepcopy(found)

    def known(self, full_name: str) -> bool:
        with self._lock:
            return full_name.lower() in self.repos

    def org_known(self, login: str) -> bool:
        with self._lock:
            return any(
                r.org and r.org["login"].lower() == login.lower() for r in self.repos.values()
            )
