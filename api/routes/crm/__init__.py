"""CRM Automation routes: platforms, mappings (with preview and sync states), records and
conflicts; :data:`CRM_ROUTERS` in one tuple for ``api/routes``."""

from __future__ import annotations

from fastapi import APIRouter

from api.routes.crm import full_syncs, mappings, platforms, sync

CRM_ROUTERS: tuple[APIRouter, ...] = (
    platforms.router,
    mappings.router,
    sync.router,
    full_syncs.router,
)
