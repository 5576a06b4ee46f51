"""The rule JSON of a mapping, as pydantic v2 models (and so as a JSON Schema).

A mapping is ``{"rules": [rule, ...]}``; each rule fills one target field. The language is
described with examples in ``streams/mapping/README.md``. These models only check the
*shape* of the JSON (and every path, template, time zone and currency in it);
:mod:`streams.mapping.engine` compiles them into something that runs.
"""

from __future__ import annotations

import zoneinfo
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from streams.mapping.money import currency_exponent
from streams.mapping.paths import parse_source, parse_target, parse_template

DATE_FORMATS = ("iso8601", "unix_s", "unix_ms", "unix_ns")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _check_path(value: str) -> str:
    parse_source(value)
    return value


def _check_optional_path(value: str | None) -> str | None:
    return value if value is None else _check_path(value)


def _check_target(value: str) -> str:
    parse_target(value)
    return value


def _check_template(value: str | None) -> str | None:
    if value is not None:
        parse_template(value)
    return value


def _check_optional_zone(value: str | None) -> str | None:
    return value if value is None else _check_zone(value)


def _check_zone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {value!r}") from exc
    return value


def _check_date_format(value: str) -> str:
    if value not in DATE_FORMATS and "%" not in value:
        raise ValueError(
            f"date format {value!r} is none of {', '.join(DATE_FORMATS)} "
            "and has no strftime directive"
        )
    return value


# --- transforms -------------------------------------------------------------------------


class Plain(_Strict):
    """A transform without options; also written as just its name: ``"upper"``."""

    op: Literal["to_int", "to_float", "to_str", "to_bool", "upper", "lower", "trim"]


class ToDecimal(_Strict):
    op: Literal["to_decimal"]
    places: int | None = Field(None, ge=0, le=18, description="quantize to this many places")
    rounding: Literal["half_even", "half_up", "down"] = "half_even"


class Split(_Strict):
    op: Literal["split"]
    separator: str = Field(",", min_length=1)


class ParseDate(_Strict):
    op: Literal["parse_date"]
    format: str = Field(description="iso8601, unix_s, unix_ms, unix_ns or a strptime format")
    tz: str | None = Field(None, description="zone of inputs that carry no offset")

    _format = field_validator("format")(_check_date_format)
    _tz = field_validator("tz")(_check_optional_zone)


class FormatDate(_Strict):
    op: Literal["format_date"]
    format: str = Field(description="iso8601, unix_s, unix_ms, unix_ns or a strftime format")
    tz: str = Field(description="zone the output is written in, e.g. UTC or Europe/Berlin")

    _format = field_validator("format")(_check_date_format)
    _tz = field_validator("tz")(_check_zone)


class Lookup(_Strict):
    op: Literal["lookup"]
    table: dict[str, Any]
    default: Any = Field(None, description="value for keys not in the table")
    strict: bool = Field(True, description="no entry and no default: error (else keep value)")


class _MinorUnits(_Strict):
    currency: str | None = Field(None, description="a literal currency code, e.g. USD")
    currency_path: str | None = Field(None, description="path of the currency in the payload")
    exponent: int | None = Field(None, ge=0, le=6, description="overrides ISO 4217")

    @model_validator(mode="after")
    def _one_currency(self) -> _MinorUnits:
        if (self.currency is None) == (self.currency_path is None):
            raise ValueError("give exactly one of currency, currency_path")
        if self.currency is not None:
            currency_exponent(self.currency)
        if self.currency_path is not None:
            parse_source(self.currency_path)
        return self


class ToMinorUnits(_MinorUnits):
    op: Literal["to_minor_units"]


class FromMinorUnits(_MinorUnits):
    op: Literal["from_minor_units"]


TransformSpec = (
    Plain | ToDecimal | Split | ParseDate | FormatDate | Lookup | ToMinorUnits | FromMinorUnits
)


def _shorthand(value: Any) -> Any:
    """``"upper"`` is short for ``{"op": "upper"}``."""
    return {"op": value} if isinstance(value, str) else value


Transform = Annotated[
    TransformSpec,
    Field(discriminator="op"),
    BeforeValidator(_shorthand, json_schema_input_type=str | TransformSpec),
]


# --- conditions -------------------------------------------------------------------------


class PathCondition(_Strict):
    """Exactly one test on the value at ``path`` (``exists``: present and not null)."""

    path: str
    eq: Any = None
    ne: Any = None
    in_: list[Any] | None = Field(None, alias="in")
    exists: bool | None = None

    _path = field_validator("path")(_check_path)

    @model_validator(mode="after")
    def _one_test(self) -> PathCondition:
        tests = self.model_fields_set & {"eq", "ne", "in_", "exists"}
        if len(tests) != 1:
            raise ValueError("a condition on a path needs exactly one of eq, ne, in, exists")
        return self


class AllOf(_Strict):
    all: list[Condition] = Field(min_length=1)


class AnyOf(_Strict):
    any: list[Condition] = Field(min_length=1)


class NotOf(_Strict):
    not_: Condition = Field(alias="not")


_CONDITION_TAGS = {"PathCondition": "path", "AllOf": "all", "AnyOf": "any", "NotOf": "not"}


def _condition_kind(value: Any) -> str | None:
    """The tag of a condition: by its key in JSON, by its class once validated."""
    if isinstance(value, dict):
        for key in ("all", "any", "not", "path"):
            if key in value:
                return key
        return None
    return _CONDITION_TAGS.get(type(value).__name__)


Condition = Annotated[
    Annotated[PathCondition, Tag("path")]
    | Annotated[AllOf, Tag("all")]
    | Annotated[AnyOf, Tag("any")]
    | Annotated[NotOf, Tag("not")],
    Discriminator(
        _condition_kind,
        custom_error_type="condition_invalid",
        custom_error_message="a condition needs one of path, all, any, not",
    ),
]


# --- rules ------------------------------------------------------------------------------


class Concat(_Strict):
    paths: list[str] = Field(min_length=1)
    separator: str = ""

    @field_validator("paths")
    @classmethod
    def _paths(cls, value: list[str]) -> list[str]:
        return [_check_path(p) for p in value]


class MapArray(_Strict):
    source: str = Field(description="path of the input list")
    rules: list[Rule] = Field(min_length=1, description="rules run on every item")

    _source = field_validator("source")(_check_path)

    @model_validator(mode="after")
    def _targets(self) -> MapArray:
        check_targets(self.rules)
        return self


VALUE_SOURCES = ("source", "coalesce", "const", "template", "concat", "map_array")


class Rule(_Strict):
    """One target field and exactly one value source."""

    target: str
    source: str | None = None
    coalesce: list[str] | None = Field(None, min_length=1)
    const: Any = None
    template: str | None = None
    concat: Concat | None = None
    map_array: MapArray | None = None
    default: Any = Field(None, description="used when the value is missing or null")
    transforms: list[Transform] = Field(default_factory=list)
    when: Condition | None = None
    else_: Any = Field(None, alias="else", description="value when `when` is false")
    required: bool = Field(False, description="a missing value is an error")
    as_: Literal["string", "number"] | None = Field(None, alias="as")
    description: str | None = None

    _target = field_validator("target")(_check_target)
    _source = field_validator("source")(_check_optional_path)
    _template = field_validator("template")(_check_template)

    @field_validator("coalesce")
    @classmethod
    def _coalesce(cls, value: list[str] | None) -> list[str] | None:
        return value if value is None else [_check_path(p) for p in value]

    @model_validator(mode="after")
    def _shape(self) -> Rule:
        given = [name for name in VALUE_SOURCES if name in self.model_fields_set]
        if len(given) != 1:
            raise ValueError(f"give exactly one of {', '.join(VALUE_SOURCES)} (got {given or 0})")
        is_array = given == ["map_array"]
        if parse_target(self.target).is_list and not is_array:
            raise ValueError("a target ending in [] needs map_array")
        if is_array and (self.transforms or "default" in self.model_fields_set or self.as_):
            raise ValueError("a map_array rule takes no transforms, default or as")
        return self


class MappingSpec(_Strict):
    """A whole mapping: the JSON a user saves (every save is a new version elsewhere)."""

    rules: list[Rule] = Field(min_length=1)
    description: str | None = None

    @model_validator(mode="after")
    def _targets(self) -> MappingSpec:
        check_targets(self.rules)
        return self


def check_targets(rules: list[Rule]) -> None:
    """Refuse two rules writing the same field, or one writing inside the other's value."""
    seen: dict[tuple[str, ...], int] = {}
    for number, rule in enumerate(rules, start=1):
        keys = parse_target(rule.target).keys
        for other_keys, other in seen.items():
            shorter = min(len(keys), len(other_keys))
            if keys[:shorter] == other_keys[:shorter]:
                raise ValueError(
                    f"target {rule.target!r} of rule {number} conflicts with "
                    f"target {rules[other - 1].target!r} of rule {other}"
                )
        seen[keys] = number


def mapping_json_schema() -> dict[str, Any]:
    """The JSON Schema of a mapping, for the mapping editor and the API docs."""
    return MappingSpec.model_json_schema(by_alias=True)
