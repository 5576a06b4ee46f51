"""CRM Automation in the browser: two platforms connected in the Platforms tab (one tested),
a mapping built row by row in the builder (policies, a value map, a type, a default) and
previewed, the sync states moving, a held conflict resolved by an operator, and a full sync's
dry run then run with its progress."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
from playwright.sync_api import expect

from sandbox.identity import DEFAULT_HUBSPOT_TOKEN, DEFAULT_SALESFORCE_TOKEN, HUBSPOT_APP_ID
from tests.e2e.browser import PHONE, Console
from tests.e2e.crm.builder import build_lead_contact_mapping
from tests.e2e.stack import Stack, wait_for

BASE = "/services/crm-automation"


def _edit(stack: Stack, platform: str, **body: Any) -> None:
    httpx.post(
        f"{stack.sandbox}/_sandbox/{platform}/edits", json=body, timeout=10
    ).raise_for_status()


def _records(stack: Stack, platform: str, kind: str) -> list[dict[str, Any]]:
    answer = httpx.get(
        f"{stack.sandbox}/_sandbox/{platform}/records", params={"object_type": kind}, timeout=10
    )
    return list(answer.json()["records"])


def _connect(admin: Console, stack: Stack, kind: str, name: str) -> None:
    page = admin.page
    form = page.locator("form[data-api='POST /api/v1/crm/platforms']")
    form.locator("input[name=name]").fill(name)
    form.locator("select[name=kind]").select_option(kind)
    form.locator("input[name=base_url]").fill(f"{stack.sandbox}/{kind}")
    origin = "synapseops" if kind == "salesforce" else str(HUBSPOT_APP_ID)
    form.locator("input[name=own_origin]").fill(origin)
    token = DEFAULT_SALESFORCE_TOKEN if kind == "salesforce" else DEFAULT_HUBSPOT_TOKEN
    form.locator("input[name=token]").fill(token)
    form.locator("button[type=submit]").click()
    expect(page.locator("#toast div").last).to_contain_text(f"Platform {name} connected")


def test_a_pair_connected_mapped_synced_and_a_conflict_resolved_in_the_console(
    stack: Stack, console: Callable[..., Console]
) -> None:
    suffix = uuid.uuid4().hex[:6]
    email, lonely = f"ada.{suffix}@example.com", f"grace.{suffix}@example.com"
    # Before any mapping: the same person on both sides, the Title differs (manual policy)
    lead = {"FirstName": "Ada", "LastName": "Lovelace", "Email": email, "Company": "Engines"}
    _edit(stack, "salesforce", op="create", object_type="Lead", fields={**lead, "Title": "CEO"})
    contact = {"firstname": "Ada", "lastname": "Lovelace", "email": email, "company": "Engines"}
    _edit(
        stack, "hubspot", op="create", object_type="contacts", fields={**contact, "jobtitle": "CTO"}
    )
    other = {"FirstName": "Grace", "LastName": "Hopper", "Email": lonely, "Company": "Navy"}
    _edit(stack, "salesforce", op="create", object_type="Lead", fields=other)

    admin = console("admin")
    page = admin.page
    admin.open(f"{BASE}/platforms")
    _connect(admin, stack, "salesforce", f"sf-{suffix}")
    _connect(admin, stack, "hubspot", f"hs-{suffix}")
    page.reload()
    row = page.locator("tr", has_text=f"hs-{suffix}")
    expect(row).to_contain_text("**hidden**")
    row.locator("button", has_text="Test connection").click()
    expect(page.locator("#toast div").last).to_contain_text("Connection: true")
    admin.shot("crm-platforms")

    admin.open(f"{BASE}/mappings")
    saved = build_lead_contact_mapping(admin, stack, f"leads-{suffix}", suffix)
    assert [f["policy"] for f in saved["spec"]["fields"]] == [
        "last_writer_wins",
        "last_writer_wins",
        "manual",
        "source_wins",
        "fill_if_empty",
    ]
    expect(page.locator("table.field-policies").last).to_contain_text("manual")

    wait_for(
        "the lonely Lead on HubSpot",
        lambda: any(
            r["properties"].get("email") == lonely for r in _records(stack, "hubspot", "contacts")
        ),
        timeout=60,
    )
    admin.open(BASE)
    section = page.locator("section.crm-mapping", has_text=f"leads-{suffix}")
    expect(section.locator("table.sync-states")).to_contain_text("salesforce → hubspot")
    admin.shot("crm-sync-states")

    operator = console("operator")
    operator.open(f"{BASE}/conflicts")
    conflict = operator.page.locator("tr[data-conflict]", has_text="CEO").first
    expect(conflict).to_contain_text("CTO")
    operator.shot("crm-conflicts")
    conflict.locator("button", has_text="Keep HubSpot").click()
    operator.confirm()
    expect(operator.page.locator("#toast div").last).to_contain_text("Choice sent")
    wait_for(
        "HubSpot's Title on Salesforce",
        lambda: any(
            r.get("Email") == email and r.get("Title") == "CTO"
            for r in _records(stack, "salesforce", "Lead")
        ),
        timeout=60,
    )

    # drift behind the service's back is not needed for the buttons: a dry run, then a run
    operator.open(BASE)
    section = operator.page.locator("section.crm-mapping", has_text=f"leads-{suffix}")
    section.locator("button", has_text="Dry run").click()
    expect(section.locator(".full-sync[data-status=done]").first).to_be_visible(timeout=60_000)
    expect(section.locator(".full-sync").first).to_contain_text("dry run")
    section.locator("button", has_text="Run full sync").click()
    operator.confirm()
    expect(section.locator(".full-sync")).to_have_count(2, timeout=20_000)
    newest = section.locator(".full-sync").first
    expect(newest).not_to_contain_text("dry run")
    expect(newest).to_have_attribute("data-status", "done", timeout=60_000)
    expect(operator.page.locator("#toast div").last).to_contain_text("Full sync")
    operator.shot("crm-full-sync")

    viewer = console("viewer")
    viewer.open(BASE)
    expect(viewer.page.locator("section.crm-mapping", has_text=f"leads-{suffix}")).to_be_visible()
    expect(viewer.page.locator("button", has_text="Run full sync")).to_have_count(0)
    viewer.open(f"{BASE}/mappings")
    mine = viewer.page.locator(f"#m-{saved['id']}")
    expect(mine).to_contain_text("map Web→ORGANIC_SEARCH, Partner→REFERRALS")
    expect(viewer.page.locator("#crm-builder")).to_have_count(0)
    expect(viewer.page.locator("main button:not([data-live-preview]), main form")).to_have_count(0)
    mine.get_by_role("button", name="Preview on live records").click()  # reads, changes nothing
    expect(mine.locator("table[data-preview=to_hubspot]")).to_contain_text("firstname")
    viewer.shot("crm-mappings-viewer")

    phone = console("admin", PHONE)
    phone.open(f"{BASE}/mappings")
    phone.page.click("#crm-template")
    expect(phone.page.locator("#crm-rows tr")).to_have_count(5)
    expect(phone.page.locator("[data-preview-state=to_hubspot]")).to_have_text("every rule applied")
    phone.shot("crm-mapping-builder-phone")
