"""The CRM Automation service's settings (streams/crm)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings

from synapseops.settings.base import section


class CrmSettings(BaseSettings):
    model_config = section("SYNAPSEOPS_CRM_")

    # A full sync being planned and handed over holds a lease this long, renewed as it goes
    # (every page read, every 200 pairs handed over); a worker killed mid-run gives it over then.
    full_sync_lease_s: float = Field(default=30.0, gt=0)
