"""The commands carried on ``integration.commands`` (published by the API, run by the worker).

One command per record, JSON, keyed by the flow id (so one flow's re-runs stay in order)::

    {"command": "rerun", "run_id": 42, "mapping": "latest", "rerun_id": "rr_..."}

``mapping`` is ``"latest"`` (the mapping's newest version) or ``"pinned"`` (the version the
re-run run used; the flow's pinned one when that run never reached the mapping). The worker
re-executes the run's source event, kept raw, through that run's flow; the delivery keeps the
flow's ``Idempotency-Key`` (flow id + source event id), so re-running an event that already
reached the target does not create a second record there.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from synapseops.errors import SchemaInvalid, Undecodable

MappingChoice = Literal["latest", "pinned"]


class RerunCommand(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    command: Literal["rerun"] = "rerun"
    run_id: int = Field(ge=1)
    mapping: MappingChoice = "latest"
    # Who asked, for the audit trail (a bulk re-run shares one id across its commands).
    rerun_id: str | None = Field(default=None, max_length=200)

    def key(self, flow_id: int) -> bytes:
        """The Kafka key: the flow, so one flow's re-runs are handled in order."""
        return str(flow_id).encode()

    def encode(self) -> bytes:
        return self.model_dump_json().encode()


def decode_command(value: bytes | None) -> RerunCommand:
    """The command in ``value``; :class:`Undecodable`/:class:`SchemaInvalid` (fatal) if not one."""
    if not value:
        raise Undecodable("empty integration command")
    try:
        return RerunCommand.model_validate_json(value)
    except ValidationError as exc:
        if any(error["type"] == "json_invalid" for error in exc.errors()):
            raise Undecodable(f"integration command is not JSON: {exc.errors()[0]['msg']}") from exc
        raise SchemaInvalid(f"not an integration command: {exc.errors()[0]['msg']}") from exc
