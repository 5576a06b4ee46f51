"""The Slack workspace behind :mod:`sandbox.chat`: channels, webhooks, tokens, what was posted,
and a loose Block Kit check (the limits integrations trip on, not the whole schema)."""

from __future__ import annotations

import copy
import hashlib
import itertools
import threading
import time
from typing import Any

from sandbox.recorder import now_iso

DEFAULT_CHANNELS = (
    "general",
    "alerts",
    "ops",
    "payments",
    "notifications",
    "approvals",
    "dead-letters",
    "integrations",
)
TEAM_ID = "T0SANDBOX01"
BOT_USER = "U0SANDBOX01"
BOT_ID = "B0SANDBOX01"
MAX_BLOCKS = 50
BLOCK_TYPES = frozenset(
    {
        "actions",
        "context",
        "divider",
        "file",
        "header",
        "image",
        "input",
        "markdown",
        "rich_text",
        "section",
        "table",
        "video",
        "call",
    }
)
_TEXT_TYPES = ("plain_text", "mrkdwn")


def channel_id(name: str) -> str:
    digest = hashlib.sha256(name.encode()).hexdigest().upper()
    return "C" + digest[:10]


def _text_problem(text: Any, pointer: str, limit: int, plain_only: bool = False) -> str | None:
    allowed = ("plain_text",) if plain_only else _TEXT_TYPES
    if not isinstance(text, dict) or text.get("type") not in allowed:
        return (
            f"[ERROR] must be a text object of type {' or '.join(allowed)} [json-pointer:{pointer}]"
        )
    if len(str(text.get("text", ""))) > limit:
        return f"[ERROR] must be less than {limit + 1} characters [json-pointer:{pointer}/text]"
    return None


def _block_problem(block: Any, pointer: str) -> str | None:
    if not isinstance(block, dict) or "type" not in block:
        return f"[ERROR] missing required field: type [json-pointer:{pointer}]"
    kind = block["type"]
    if kind not in BLOCK_TYPES:
        return f"[ERROR] unsupported type: {kind} [json-pointer:{pointer}/type]"
    if len(str(block.get("block_id", ""))) > 255:
        return f"[ERROR] must be less than 256 characters [json-pointer:{pointer}/block_id]"
    if kind == "section":
        if "text" not in block and "fields" not in block:
            return f"[ERROR] must provide either text or fields [json-pointer:{pointer}]"
        if "text" in block:
            return _text_problem(block["text"], f"{pointer}/text", 3000)
        if len(block["fields"]) > 10:
            return f"[ERROR] no more than 10 items allowed [json-pointer:{pointer}/fields]"
    if kind == "header":
        return _text_problem(block.get("text"), f"{pointer}/text", 150, plain_only=True)
    if kind == "actions" and len(block.get("elements") or []) > 25:
        return f"[ERROR] no more than 25 items allowed [json-pointer:{pointer}/elements]"
    if kind == "context" and len(block.get("elements") or []) > 10:
        return f"[ERROR] no more than 10 items allowed [json-pointer:{pointer}/elements]"
    return None


def blocks_problem(blocks: Any) -> list[str]:
    """Slack's ``[ERROR] … [json-pointer:/blocks/…]`` messages for these blocks ([] = fine)."""
    if blocks is None:
        return []
    if not isinstance(blocks, list):
        return ["[ERROR] must be an array [json-pointer:/blocks]"]
    if len(blocks) > MAX_BLOCKS:
        return [f"[ERROR] no more than {MAX_BLOCKS} items allowed [json-pointer:/blocks]"]
    problems = [_block_problem(b, f"/blocks/{i}") for i, b in enumerate(blocks)]
    return [p for p in problems if p is not None]


class SlackWorkspace:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ts = itertools.count(1)
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._channels = {name: channel_id(name) for name in DEFAULT_CHANNELS}
            self._archived: set[str] = set()
            self._revoked: set[str] = set()
            self._messages: list[dict[str, Any]] = []
            self._webhooks = {self._webhook_path(n): channel_id(n) for n in DEFAULT_CHANNELS}

    @staticmethod
    def _webhook_path(name: str, n: int = 0) -> str:
        secret = hashlib.sha256(f"webhook:{name}:{n}".encode()).hexdigest()[:24]
        return f"{TEAM_ID}/B{channel_id(name)[1:]}{n or ''}/{secret}"

    def add_channels(self, names: list[str]) -> None:
        with self._lock:
            for name in names:
                bare = name.lstrip("#")
                self._channels[bare] = channel_id(bare)

    def archive(self, names: list[str]) -> None:
        for name in names:
            if (found := self.resolve(name)) is not None:
                with self._lock:
                    self._archived.add(found)

    def channels(self) -> dict[str, str]:
        with self._lock:
            return dict(self._channels)

    def resolve(self, channel: str) -> str | None:
        """A channel name (with or without ``#``) or id → its id; None when unknown."""
        with self._lock:
            if channel in self._channels.values():
                return channel
            return self._channels.get(channel.lstrip("#"))

    def name_of(self, channel: str) -> str:
        with self._lock:
            return next((n for n, i in self._channels.items() if i == channel), channel)

    def archived(self, channel: str) -> bool:
        with self._lock:
            return channel in self._archived

    def revoke(self, tokens: list[str]) -> None:
        with self._lock:
            self._revoked |= set(tokens)

    def revoked(self, token: str) -> bool:
        with self._lock:
            return token in self._revoked

    def webhook_channel(self, path: str) -> str | None:
        with self._lock:
            return self._webhooks.get(path)

    def add_webhook(self, channel: str) -> str | None:
        found = self.resolve(channel)
        if found is None:
            return None
        with self._lock:
            path = self._webhook_path(channel.lstrip("#"), len(self._webhooks) + 1)
            self._webhooks[path] = found
            return path

    def webhooks(self, base_url: str) -> list[dict[str, str]]:
        with self._lock:
            names = {i: n for n, i in self._channels.items()}
            return [
                {
                    "url": f"{base_url}/slack/services/{path}",
                    "channel": cid,
                    "name": names.get(cid, cid),
                }
                for path, cid in self._webhooks.items()
            ]

    def post(
        self, channel: str, args: dict[str, Any], via: str, webhook: str | None = None
    ) -> dict[str, Any]:
        """Keep a message the channel now shows; the message as Slack echoes it back."""
        ts = f"{int(time.time())}.{next(self._ts) % 1_000_000:06d}"
        message: dict[str, Any] = {
            "type": "message",
            "user": BOT_USER,
            "bot_id": BOT_ID,
            "team": TEAM_ID,
            "text": args.get("text") or "",
            "ts": ts,
        }
        for optional in ("blocks", "attachments", "thread_ts", "metadata"):
            if args.get(optional):
                message[optional] = args[optional]
        entry = {
            **copy.deepcopy(message),
            "channel": channel,
            "channel_name": self.name_of(channel),
            "via": via,
            "webhook": webhook,
            "received_at": now_iso(),
        }
        with self._lock:
            self._messages.append(entry)
        return message

    def messages(self, channel: str | None = None) -> list[dict[str, Any]]:
        wanted = self.resolve(channel) if channel else None
        with self._lock:
            if channel and wanted is None:
                return []
            return [
                copy.deepcopy(m) for m in self._messages if wanted is None or m["channel"] == wanted
            ]

    def listing(self, exclude_archived: bool) -> list[dict[str, Any]]:
        with self._lock:
            return [
                {
                    "id": cid,
                    "name": name,
                    "name_normalized": name,
                    "is_channel": True,
                    "is_group": False,
                    "is_im": False,
                    "is_private": False,
                    "is_archived": cid in self._archived,
                    "is_general": name == "general",
                    "is_member": True,
                    "created": 1_700_000_000,
                    "creator": BOT_USER,
                    "num_members": 3,
                }
                for name, cid in self._channels.items()
                if not (exclude_archived and cid in self._archived)
            ]

    def identity(self) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://synapseops-sandbox.slack.com/",
            "team": "SynapseOps Sandbox",
            "user": "synapseops",
            "team_id": TEAM_ID,
            "user_id": BOT_USER,
            "bot_id": BOT_ID,
        }
