"""Record ids the way each CRM makes them.

Salesforce: 18 characters — key prefix of the object (3: ``00Q`` Lead, ``003`` Contact, ``006``
Opportunity, ``005`` User, ...), pod (2), a base-62 counter (10), and the 3-character checksum
that makes the id case-insensitive (the 15-character form is accepted everywhere). HubSpot:
numeric strings.
"""

from __future__ import annotations

import hashlib

# Real key prefixes of common standard objects; others get a stable made-up one.
SALESFORCE_PREFIXES = {
    "Account": "001",
    "Contact": "003",
    "User": "005",
    "Opportunity": "006",
    "Lead": "00Q",
    "Case": "500",
    "Product2": "01t",
    "Task": "00T",
}
_CHECKSUM_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# HubSpot's object ids are numeric and start well above 1; the offset keeps that look.
HUBSPOT_ID_OFFSET = 51_000


def salesforce_checksum(id15: str) -> str:
    """The 3-character suffix that makes a 15-character Salesforce id case-insensitive."""
    suffix = ""
    for chunk in range(3):
        bits = 0
        for position, char in enumerate(id15[chunk * 5 : chunk * 5 + 5]):
            if "A" <= char <= "Z":
                bits |= 1 << position
        suffix += _CHECKSUM_ALPHABET[bits]
    return suffix


def salesforce_prefix(object_type: str) -> str:
    prefix = SALESFORCE_PREFIXES.get(object_type)
    if prefix is None:
        digest = hashlib.sha256(object_type.encode()).digest()
        prefix = "a0" + _BASE62[digest[0] % 62]
    return prefix


def salesforce_id(object_type: str, number: int) -> str:
    """An 18-character id: key prefix (3) + pod (2) + base-62 counter (10) + checksum (3)."""
    counter = ""
    for _ in range(10):
        number, digit = divmod(number, 62)
        counter = _BASE62[digit] + counter
    id15 = f"{salesforce_prefix(object_type)}5e{counter}"
    return id15 + salesforce_checksum(id15)


def to_18(record_id: str) -> str:
    return record_id + salesforce_checksum(record_id) if len(record_id) == 15 else record_id


def is_salesforce_id(value: str) -> bool:
    return len(value) in (15, 18) and value.isalnum()


def hubspot_id(_object_type: str, number: int) -> str:
    return str(HUBSPOT_ID_OFFSET + number)
