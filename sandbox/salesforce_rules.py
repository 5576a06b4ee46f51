"""What Salesforce refuses in a record, and how it says so.

Single-record answers carry ``[{message, errorCode, fields}]``; sObject collections put
``{statusCode, message, fields}`` in each result's ``errors``. The checks are the ones an
integration meets first: required fields (also when an update blanks one), e-mail format,
text lengths, read-only system fields, non-scalar values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    "Account": ("Name",),
    "Contact": ("LastName",),
    "Lead": ("LastName", "Company"),
    "Opportunity": ("Name", "StageName", "CloseDate"),
}
RESERVED_FIELDS = frozenset(
    {
        "Id",
        "IsDeleted",
        "CreatedDate",
        "CreatedById",
        "LastModifiedDate",
        "LastModifiedById",
        "SystemModstamp",
    }
)
# (label, max length) of the text fields that sync jobs write most.
TEXT_FIELDS: dict[str, tuple[str, int]] = {
    "FirstName": ("First Name", 40),
    "LastName": ("Last Name", 80),
    "Email": ("Email", 80),
    "Company": ("Company", 255),
    "Title": ("Title", 128),
    "Phone": ("Phone", 40),
    "LeadSource": ("Lead Source", 255),
    "Name": ("Name", 120),
    "StageName": ("Stage", 255),
}
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True)
class FieldError:
    code: str
    message: str
    fields: list[str] = field(default_factory=list)

    def single(self) -> dict[str, Any]:
        return {"message": self.message, "errorCode": self.code, "fields": list(self.fields)}

    def in_collection(self) -> dict[str, Any]:
        return {"statusCode": self.code, "message": self.message, "fields": list(self.fields)}


def error_body(errors: list[FieldError]) -> list[dict[str, Any]]:
    return [e.single() for e in errors]


def check_fields(object_type: str, fields: dict[str, Any], creating: bool) -> list[FieldError]:
    """Why Salesforce would refuse to save these fields ([] when it would not)."""
    reserved = sorted(RESERVED_FIELDS & fields.keys())
    if reserved:
        message = (
            f"Unable to create/update fields: {', '.join(reserved)}. Please check the security "
            "settings of this field and verify that it is read/write for your profile or "
            "permission set."
        )
        return [FieldError("INVALID_FIELD_FOR_INSERT_UPDATE", message, reserved)]
    nested = sorted(k for k, v in fields.items() if isinstance(v, dict | list))
    if nested:
        message = f"Cannot deserialize instance of string from START_OBJECT value: {nested[0]}"
        return [FieldError("JSON_PARSER_ERROR", message, nested)]
    required = REQUIRED_FIELDS.get(object_type, ())
    missing = [
        f
        for f in required
        if (creating or f in fields) and (fields.get(f) is None or fields.get(f) == "")
    ]
    if missing:
        message = f"Required fields are missing: [{', '.join(missing)}]"
        return [FieldError("REQUIRED_FIELD_MISSING", message, missing)]
    errors: list[FieldError] = []
    email = fields.get("Email")
    if isinstance(email, str) and email and not _EMAIL.match(email):
        message = f"Email: invalid email address: {email}"
        errors.append(FieldError("INVALID_EMAIL_ADDRESS", message, ["Email"]))
    for name, value in fields.items():
        limit = TEXT_FIELDS.get(name)
        if limit and isinstance(value, str) and len(value) > limit[1]:
            message = f"{limit[0]}: data value too large: {value[:40]} (max length={limit[1]})"
            errors.append(FieldError("STRING_TOO_LONG", message, [name]))
    return errors


def parse_time(text: str) -> datetime:
    """A Salesforce date-time: ``2026-01-31T10:00:00Z``, ``...00.000+0000``, ``...+00:00``."""
    value = text.strip().replace(" ", "+")  # a '+' that reached us unescaped in a query string
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    match = re.match(r"^(.*[T ]\d\d:\d\d(?::\d\d(?:\.\d+)?)?)([+-]\d\d)(\d\d)$", value)
    if match:
        value = f"{match.group(1)}{match.group(2)}:{match.group(3)}"
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
