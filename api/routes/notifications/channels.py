"""``/api/v1/notification-channels``: Slack, Teams and SMTP channels (CRUD, a test message).

The secret (a bot token, a webhook URL, an SMTP password) is written, never read: answers say
``has_secret``. Checked on the way in: a Slack bot token starts ``xox``, a webhook is an
``https`` URL (``http`` to an allow-listed host, i.e. the sandbox, in dev/test), an e-mail
channel names its server, its sender and at least one recipient. A test message is sent from
the API at once, through the same client the worker uses, and answers with the receipt (or
the platform's refusal, 502).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from api.deps import EngineDep, PrincipalDep, SettingsDep
from sinks.notifications.config import ConfigStore
from sinks.notifications.secrets import SecretBox
from sinks.notifications.senders import Channel, Senders
from sinks.notifications.store import RunStore
from streams.notifications.messages import Message
from synapseops.errors import FatalError, RetryableError
from synapseops.ids import new_id
from synapseops.settings import Settings

router = APIRouter(prefix="/notification-channels", tags=["notifications"])
Kind = Literal["slack_bot", "slack_webhook", "teams_workflow", "email"]


class ChannelRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.#-]*$")
    kind: Kind
    config: dict[str, Any] = Field(default_factory=dict)
    secret: SecretStr | None = None
    rate_per_s: float | None = Field(default=None, gt=0, le=100)
    fallback_channel_id: int | None = None
    enabled: bool = True

    @model_validator(mode="after")
    def _complete(self) -> ChannelRequest:
        secret = self.secret.get_secret_value() if self.secret else ""
        if self.kind == "slack_bot":
            if not str(self.config.get("channel", "")).strip():
                raise ValueError("a slack_bot channel needs config.channel (#name or C…)")
            if secret and not secret.startswith("xox"):
                raise ValueError("a Slack bot token starts with xox")
        if self.kind in ("slack_webhook", "teams_workflow") and secret:
            if not secret.startswith(("https://", "http://")):
                raise ValueError("the secret of a webhook channel is its URL")
        if self.kind == "email":
            missing = [k for k in ("host", "port", "from", "to") if not self.config.get(k)]
            if missing:
                raise ValueError(f"an email channel needs config {', '.join(missing)}")
        return self


class ChannelPublic(BaseModel):
    id: int
    name: str
    kind: str
    config: dict[str, Any]
    has_secret: bool
    rate_per_s: float | None
    fallback_channel_id: int | None
    enabled: bool


class TestMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = Field(default="SynapseOps test message", max_length=150)
    text: str = Field(default="If you read this, the channel works.", max_length=3000)


def _store(engine: Any, settings: Settings) -> ConfigStore:
    return ConfigStore(engine, SecretBox(settings))


def _values(body: ChannelRequest) -> dict[str, Any]:
    return body.model_dump(exclude={"secret"})


@router.get("", summary="Every channel (secrets never shown)")
def list_channels(engine: EngineDep, settings: SettingsDep) -> list[ChannelPublic]:
    return [ChannelPublic.model_validate(c) for c in _store(engine, settings).list_channels()]


@router.get("/{channel_id}", summary="One channel")
def get_channel(engine: EngineDep, settings: SettingsDep, channel_id: int) -> ChannelPublic:
    return ChannelPublic.model_validate(_store(engine, settings).get_channel(channel_id))


@router.post("", status_code=status.HTTP_201_CREATED, summary="Create a channel")
def create_channel(engine: EngineDep, settings: SettingsDep, body: ChannelRequest) -> ChannelPublic:
    secret = body.secret.get_secret_value() if body.secret else None
    row = _store(engine, settings).create_channel(secret=secret, **_values(body))
    return ChannelPublic.model_validate(row)


@router.put("/{channel_id}", summary="Replace a channel (the secret only when given)")
def update_channel(
    engine: EngineDep, settings: SettingsDep, channel_id: int, body: ChannelRequest
) -> ChannelPublic:
    secret = body.secret.get_secret_value() if body.secret else None
    row = _store(engine, settings).update_channel(channel_id, secret=secret, **_values(body))
    return ChannelPublic.model_validate(row)


@router.delete("/{channel_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete")
def delete_channel(engine: EngineDep, settings: SettingsDep, channel_id: int) -> None:
    _store(engine, settings).delete_channel(channel_id)


@router.post("/{channel_id}/test", summary="Send a test message now; the platform's receipt")
async def test_channel(
    engine: EngineDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    channel_id: int,
    body: TestMessage | None = None,
) -> dict[str, Any]:
    runs = RunStore(engine)
    row = await asyncio.to_thread(runs.channel, channel_id=channel_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no channel {channel_id}")
    box = SecretBox(settings)
    channel = Channel(
        id=row["id"],
        name=row["name"],
        kind=row["kind"],
        config=row["config"],
        secret=box.open(row["secret"]),
        rate_per_s=row["rate_per_s"],
        fallback_channel_id=None,
    )
    asked = body or TestMessage()
    key = new_id("test")
    senders = Senders(settings)
    message = Message(title=asked.title, text=f"{asked.text}\n(sent by {principal.actor})")
    await asyncio.to_thread(runs.begin_send, key, channel.id, channel.kind, None, None)
    try:
        receipt = await senders.send(channel, message, key)
    except (RetryableError, FatalError) as exc:
        await asyncio.to_thread(runs.send_failed, key, str(exc), True)
        raise HTTPException(status.HTTP_502_BAD_GATEWAY, f"{channel.name}: {exc}") from exc
    finally:
        await senders.aclose()
    await asyncio.to_thread(runs.sent, key, receipt, datetime.now(UTC))
    return {"idempotency_key": key, "receipt": receipt}
