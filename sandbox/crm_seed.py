"""Realistic CRM people for both sides, repeatable from a seed.

Companies (and their cities) come from the ebikes sample accounts (``samples/crm/ebikes``)
plus made-up ones in the same shape; e-mails are unique (``first.last.<n>@<company domain>``).
The same person rendered for Salesforce (``FirstName``, ``LastName``, ``Email``, ``Company``,
``LeadSource`` …) and for HubSpot (``firstname``, ``lastname``, ``email``, ``company``,
``hs_lead_source`` …) carries the same values, so ``shared`` people match across the sides.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sandbox.samples import load

FIRST_NAMES = (
    "Ada Alan Amara Ana Arjun Ben Carla Chen Dana Diego Elif Emma Femi Grace Hana Ines Ivan "
    "Jonas Kai Lara Leo Maya Mei Nadia Noah Omar Priya Rosa Sami Sara Tomas Uma Vera Yuki Zoe"
).split()
LAST_NAMES = (
    "Abbott Baker Castro Diaz Evans Fischer Garcia Haddad Ito Jensen Kowalski Lopez Moreau "
    "Nakamura Okafor Patel Quinn Rossi Silva Tanaka Ueda Varga Weber Xu Yilmaz Zhang"
).split()
TITLES = ("Buyer", "Fleet Manager", "Store Owner", "Operations Lead", "Mechanic", "CFO")
LEAD_SOURCES = ("Web", "Phone Inquiry", "Partner Referral", "Trade Show", "Other")
EXTRA_COMPANIES = (
    ("Velo City Rentals", "Portland", "OR"),
    ("Summit Cycles", "Denver", "CO"),
    ("Harbor Bikes", "Seattle", "WA"),
    ("Lakeside Wheels", "Chicago", "IL"),
)
STAGES = ("Prospecting", "Qualification", "Needs Analysis", "Proposal/Price Quote")
DEAL_STAGES = ("appointmentscheduled", "qualifiedtobuy", "presentationscheduled")


@dataclass(frozen=True)
class Company:
    name: str
    city: str
    state: str

    @property
    def domain(self) -> str:
        return re.sub(r"[^a-z0-9]+", "", self.name.lower()) + ".example.com"


@dataclass(frozen=True)
class Person:
    number: int
    first: str
    last: str
    company: Company
    title: str
    lead_source: str
    phone: str

    @property
    def email(self) -> str:
        return f"{self.first}.{self.last}.{self.number}@{self.company.domain}".lower()

    def salesforce(self, object_type: str) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "FirstName": self.first,
            "LastName": self.last,
            "Email": self.email,
            "Title": self.title,
            "Phone": self.phone,
            "LeadSource": self.lead_source,
        }
        if object_type == "Lead":
            return fields | {
                "Company": self.company.name,
                "City": self.company.city,
                "State": self.company.state,
                "Status": "Open - Not Contacted",
            }
        return fields | {"MailingCity": self.company.city, "MailingState": self.company.state}

    def hubspot(self) -> dict[str, Any]:
        return {
            "firstname": self.first,
            "lastname": self.last,
            "email": self.email,
            "company": self.company.name,
            "jobtitle": self.title,
            "phone": self.phone,
            "city": self.company.city,
            "state": self.company.state,
            "hs_lead_source": self.lead_source,
        }


def companies() -> list[Company]:
    accounts = load("crm/ebikes/Accounts.json")["records"]
    found = [Company(a["Name"], a["BillingCity"], a["BillingState"]) for a in accounts]
    return found + [Company(*extra) for extra in EXTRA_COMPANIES]


def people(count: int, seed: int, start: int = 1) -> list[Person]:
    rng, known = random.Random(seed), companies()
    return [
        Person(
            number=number,
            first=rng.choice(FIRST_NAMES),
            last=rng.choice(LAST_NAMES),
            company=rng.choice(known),
            title=rng.choice(TITLES),
            lead_source=rng.choice(LEAD_SOURCES),
            phone=f"+1-555-{rng.randrange(10**7):07d}",
        )
        for number in range(start, start + count)
    ]


def opportunity(rng: random.Random, person: Person) -> dict[str, Any]:
    close = date(2027, 1, 1) + timedelta(days=rng.randrange(365))
    return {
        "Name": f"{person.company.name} fleet order {person.number}",
        "StageName": rng.choice(STAGES),
        "CloseDate": close.isoformat(),
        "Amount": rng.randrange(20, 400) * 100,
    }


def deal(rng: random.Random, person: Person) -> dict[str, Any]:
    close = date(2027, 1, 1) + timedelta(days=rng.randrange(365))
    return {
        "dealname": f"{person.company.name} fleet order {person.number}",
        "dealstage": rng.choice(DEAL_STAGES),
        "pipeline": "default",
        "closedate": f"{close.isoformat()}T00:00:00.000Z",
        "amount": str(rng.randrange(20, 400) * 100),
    }
