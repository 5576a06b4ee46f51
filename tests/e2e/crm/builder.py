"""The CRM mapping builder driven as a person does: rows added with the keyboard, a mistaken
row deleted, one moved with Alt+↑, a value map fixed after the preview showed its error on
the row, saved, and the saved mapping read back through the JSON API."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from tests.e2e.browser import Console
from tests.e2e.stack import Stack, wait_for

# (Salesforce field, HubSpot field, policy) in the order they are typed; Title is moved up
# above Company afterwards, and the mistaken Phone row is deleted.
TYPED = [
    ("FirstName", "firstname", "last_writer_wins"),
    ("LastName", "lastname", "last_writer_wins"),
    ("Company", "company", "source_wins"),
    ("Title", "jobtitle", "manual"),
    ("Phone", "phone", "last_writer_wins"),
    ("LeadSource", "hs_lead_source", "fill_if_empty"),
]


def _row(page: Any, n: int) -> Any:
    return page.locator("#crm-rows tr").nth(n - 1)


def build_lead_contact_mapping(
    person: Console, stack: Stack, name: str, suffix: str
) -> dict[str, Any]:
    page = person.page
    builder = page.locator("#crm-builder")
    page.fill("#crm-name", name)
    page.select_option("#crm-sf-platform", label=f"sf-{suffix}")
    page.select_option("#crm-hs-platform", label=f"hs-{suffix}")
    expect(page.locator("#crm-sf-object")).to_have_value("Lead")
    page.select_option("#crm-hs-object", "contacts")
    expect(page.locator("#crm-match-sf")).to_have_value("Email")

    for n, (salesforce, hubspot, policy) in enumerate(TYPED, start=1):
        page.focus("#crm-add-row")
        page.keyboard.press("Enter")  # the new row's first field has the focus
        page.keyboard.type(salesforce)
        page.keyboard.press("Tab")
        page.keyboard.type(hubspot)
        page.keyboard.press("Tab")
        _row(page, n).locator(".crm-policy").select_option(policy)
    expect(page.locator("#crm-count")).to_have_text("6 fields")

    _row(page, 5).get_by_role("button", name="delete row 5").click()  # Phone: a mistake
    expect(page.locator("#crm-rows tr")).to_have_count(5)
    expect(page.locator("#crm-rows tr").nth(4).locator(".crm-sf")).to_be_focused()
    _row(page, 4).locator(".crm-hs").focus()  # Title, moved above Company with the keyboard
    page.keyboard.press("Alt+ArrowUp")
    expect(_row(page, 3).locator(".crm-sf")).to_have_value("Title")
    expect(_row(page, 3).locator(".crm-hs")).to_be_focused()

    first = _row(page, 1).locator("td[data-direction=to_hubspot]")
    first.locator(".crm-type").select_option("trim")
    company = _row(page, 4).locator("td[data-direction=to_hubspot]")
    company.locator(".crm-default").fill("Unknown")
    source = _row(page, 5)
    source.locator("td[data-direction=to_hubspot] .crm-map").fill("Web=ORGANIC_SEARCH")
    source.locator("td[data-direction=to_salesforce] .crm-map").fill(
        "ORGANIC_SEARCH=Web; REFERRALS=Partner"
    )

    # The preview maps the sample records; a picklist value the map lacks is its row's error.
    sample = page.locator("#crm-sample-sf")
    sample.fill(sample.input_value().replace('"Web"', '"Partner"'))
    expect(source).to_have_class(re.compile("has-error"))
    expect(source.locator("td[data-direction=to_hubspot] .rule-error")).to_contain_text(
        "no entry for 'Partner'"
    )
    source.locator("td[data-direction=to_hubspot] .crm-map").fill(
        "Web=ORGANIC_SEARCH; Partner=REFERRALS"
    )
    out = builder.locator("table[data-preview=to_hubspot]")
    expect(out).to_contain_text("REFERRALS")
    expect(out.locator("tr", has_text="firstname")).to_contain_text("Ada")
    expect(builder.locator("[data-preview-state=to_hubspot]")).to_have_text("every rule applied")
    back = builder.locator("table[data-preview=to_salesforce]")
    expect(back.locator("tr", has_text="LeadSource")).to_contain_text("Web")
    expect(source).not_to_have_class(re.compile("has-error"))
    person.shot("crm-mapping-builder")

    page.click("#crm-save")
    expect(page.locator("#toast div").last).to_contain_text(f"Mapping {name} created")
    saved = wait_for(
        "the mapping through the JSON API",
        lambda: next((m for m in stack.get("/api/v1/crm/mappings") if m["name"] == name), None),
    )
    spec = saved["spec"]
    assert spec["salesforce_object"] == "Lead" and spec["hubspot_object"] == "contacts"
    assert spec["match"] == {"salesforce": "Email", "hubspot": "email"}
    assert [(f["salesforce"], f["hubspot"]) for f in spec["fields"]] == [
        ("FirstName", "firstname"),
        ("LastName", "lastname"),
        ("Title", "jobtitle"),
        ("Company", "company"),
        ("LeadSource", "hs_lead_source"),
    ]
    fields = {f["salesforce"]: f for f in spec["fields"]}
    assert fields["FirstName"]["to_hubspot"] == ["trim"]
    assert fields["Company"]["hubspot_default"] == "Unknown"
    assert fields["LeadSource"]["to_hubspot"] == [
        {"op": "lookup", "table": {"Web": "ORGANIC_SEARCH", "Partner": "REFERRALS"}}
    ]
    assert fields["LeadSource"]["to_salesforce"] == [
        {"op": "lookup", "table": {"ORGANIC_SEARCH": "Web", "REFERRALS": "Partner"}}
    ]
    expect(page.locator(f"#m-{saved['id']}")).to_be_visible()  # the page reloaded with it
    return dict(saved)
