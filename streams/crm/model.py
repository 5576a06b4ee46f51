"""What a CRM field mapping is, and how it runs on the mapping engine (pure, no I/O).

A :class:`CrmMappingSpec` pairs one Salesforce object with one HubSpot object. Each
:class:`FieldPair` names a field on each side, the mapping engine's transforms per direction
(type coercion, a picklist ``lookup``, ...), a ``default`` per direction, and the field's
conflict policy:

- ``last_writer_wins``: the side whose record was modified last wins;
- ``source_wins``: the mapping's ``source_side`` wins;
- ``fill_if_empty``: a value only fills an empty field; two different values both stay;
- ``manual``: the record's field is held, with both values, until a person resolves it.

The match key (``match``) pairs records that exist on both sides before any sync (an e-mail,
an external id). :func:`compile_crm_mapping` turns the pairs into two compiled mapping-engine
mappings (one per direction), checked once; a bad rule is a :class:`MappingSpecInvalid`
naming it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from streams.mapping import CompiledMapping, compile_mapping

Side = Literal["salesforce", "hubspot"]
SIDES: tuple[Side, Side] = ("salesforce", "hubspot")
Policy = Literal["last_writer_wins", "source_wins", "fill_if_empty", "manual"]
Directions = Literal["both", "to_hubspot", "to_salesforce"]
DeletePolicy = Literal["propagate", "unlink"]


def other(side: Side) -> Side:
    return "hubspot" if side == "salesforce" else "salesforce"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FieldPair(_Strict):
    salesforce: str = Field(min_length=1, max_length=80, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    hubspot: str = Field(min_length=1, max_length=100, pattern=r"^[a-z_][a-z0-9_]*$")
    policy: Policy = "last_writer_wins"
    to_hubspot: list[Any] = Field(default_factory=list)  # mapping-engine transforms
    to_salesforce: list[Any] = Field(default_factory=list)
    hubspot_default: Any = None
    salesforce_default: Any = None


class MatchKey(_Strict):
    salesforce: str = Field(min_length=1, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    hubspot: str = Field(min_length=1, pattern=r"^[a-z_][a-z0-9_]*$")


class CrmMappingSpec(_Strict):
    """The rules part of a FieldMapping row (objects, fields, match key and policies)."""

    salesforce_object: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$")
    hubspot_object: Literal["contacts", "companies", "deals"]
    match: MatchKey
    fields: list[FieldPair] = Field(min_length=1, max_length=200)
    directions: Directions = "both"
    source_side: Side = "salesforce"
    delete_policy: DeletePolicy = "propagate"

    @model_validator(mode="after")
    def _unique(self) -> CrmMappingSpec:
        for side in SIDES:
            names = [getattr(pair, side) for pair in self.fields]
            if len(set(names)) != len(names):
                raise ValueError(f"a {side} field is mapped twice")
        return self

    def allows(self, source: Side) -> bool:
        """Whether changes on ``source`` are written to the other side."""
        wanted = "to_hubspot" if source == "salesforce" else "to_salesforce"
        return self.directions in ("both", wanted)


@dataclass(frozen=True)
class CompiledCrmMapping:
    """A spec with its two directions compiled by the mapping engine."""

    id: int
    spec: CrmMappingSpec
    to_hubspot: CompiledMapping
    to_salesforce: CompiledMapping

    def fields_of(self, side: Side) -> list[str]:
        return [getattr(pair, side) for pair in self.spec.fields]

    def match_field(self, side: Side) -> str:
        return str(getattr(self.spec.match, side))

    def toward(self, target: Side) -> CompiledMapping:
        return self.to_hubspot if target == "hubspot" else self.to_salesforce


def _rules(spec: CrmMappingSpec, target: Side) -> dict[str, Any]:
    source = other(target)
    rules = []
    for pair in spec.fields:
        rule: dict[str, Any] = {"target": getattr(pair, target), "source": getattr(pair, source)}
        transforms = pair.to_hubspot if target == "hubspot" else pair.to_salesforce
        if transforms:
            rule["transforms"] = transforms
        default = pair.hubspot_default if target == "hubspot" else pair.salesforce_default
        if default is not None:
            rule["default"] = default
        rules.append(rule)
    return {"rules": rules}


def compile_crm_mapping(
    mapping_id: int, spec: CrmMappingSpec | dict[str, Any]
) -> CompiledCrmMapping:
    """Validate and compile; raises pydantic's ValidationError or MappingSpecInvalid."""
    if not isinstance(spec, CrmMappingSpec):
        spec = CrmMappingSpec.model_validate(spec)
    return CompiledCrmMapping(
        id=mapping_id,
        spec=spec,
        to_hubspot=compile_mapping(_rules(spec, "hubspot")),
        to_salesforce=compile_mapping(_rules(spec, "salesforce")),
    )


def norm(value: Any) -> str | None:
    """A field's value as compared and hashed: text, with empty and null the same."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def match_value(value: Any) -> str | None:
    found = norm(value)
    return found.strip().casefold() if found is not None else None
