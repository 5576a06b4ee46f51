"""Whether a reader schema reads what a writer schema wrote: Avro's resolution rules, checked.

:func:`incompatibilities` lists every reason a reader on ``reader`` would fail on (or silently
misread) data written with ``writer``; empty means BACKWARD compatible, the rule a Confluent
registry applies by default and the one every subject here keeps between its versions
(``tests/unit/test_schemas_compat.py``). The rules are the specification's
(https://avro.apache.org/docs/1.11.1/specification/#schema-resolution): fields matched by
name or by the reader's aliases, a reader field the writer lacks needs a default, numeric
promotion only widens, every writer branch of a union must fit some reader branch. One rule
is stricter than Avro's: a changed ``logicalType`` is refused (millis read as micros resolve
without an error and are wrong by a factor of a thousand).
"""

from __future__ import annotations

from typing import Any

# What each writer primitive may be read as (Avro's promotions).
PROMOTIONS: dict[str, frozenset[str]] = {
    "int": frozenset({"int", "long", "float", "double"}),
    "long": frozenset({"long", "float", "double"}),
    "float": frozenset({"float", "double"}),
    "string": frozenset({"string", "bytes"}),
    "bytes": frozenset({"bytes", "string"}),
}


def incompatibilities(writer: Any, reader: Any, path: str = "") -> list[str]:
    """Reasons ``reader`` cannot read data ``writer`` wrote (parsed schemas); [] when it can."""
    return _check(writer, reader, path or _name(reader))


def _name(schema: Any) -> str:
    return str(schema.get("name", "")) if isinstance(schema, dict) else str(schema)


def _type(schema: Any) -> str:
    if isinstance(schema, list):
        return "union"
    if isinstance(schema, dict):
        return str(schema["type"]) if not isinstance(schema["type"], (dict, list)) else "nested"
    return str(schema)


def _check(writer: Any, reader: Any, path: str) -> list[str]:
    if isinstance(writer, dict) and isinstance(writer.get("type"), (dict, list)):
        writer = writer["type"]
    if isinstance(reader, dict) and isinstance(reader.get("type"), (dict, list)):
        reader = reader["type"]
    if isinstance(writer, list):
        problems: list[str] = []
        for branch in writer:
            if isinstance(reader, list):
                if not any(not _check(branch, option, path) for option in reader):
                    problems.append(f"{path}: writer branch {_type(branch)} fits no reader branch")
            else:
                problems.extend(_check(branch, reader, path))
        return problems
    if isinstance(reader, list):
        if any(not _check(writer, option, path) for option in reader):
            return []
        return [f"{path}: writer type {_type(writer)} fits no branch of the reader's union"]
    return _same_kind(writer, reader, path)


def _logical(schema: Any) -> str | None:
    return schema.get("logicalType") if isinstance(schema, dict) else None


def _same_kind(writer: Any, reader: Any, path: str) -> list[str]:
    w_type, r_type = _type(writer), _type(reader)
    if _logical(writer) != _logical(reader):
        return [f"{path}: logicalType {_logical(writer)} became {_logical(reader)}"]
    if w_type in PROMOTIONS or r_type in PROMOTIONS or w_type != r_type:
        allowed = PROMOTIONS.get(w_type, frozenset({w_type}))
        return [] if r_type in allowed else [f"{path}: {w_type} cannot be read as {r_type}"]
    if w_type == "record":
        return _records(writer, reader, path)
    if w_type == "array":
        return _check(writer["items"], reader["items"], f"{path}[]")
    if w_type == "map":
        return _check(writer["values"], reader["values"], f"{path}{{}}")
    if w_type == "enum":
        missing = set(writer["symbols"]) - set(reader["symbols"])
        if missing and "default" not in reader:
            return [f"{path}: enum symbols {sorted(missing)} unknown to the reader"]
        return []
    if w_type == "fixed" and writer["size"] != reader["size"]:
        return [f"{path}: fixed size {writer['size']} became {reader['size']}"]
    return []


def _records(writer: dict[str, Any], reader: dict[str, Any], path: str) -> list[str]:
    written = {field["name"]: field for field in writer["fields"]}
    problems: list[str] = []
    for field in reader["fields"]:
        names = [field["name"], *field.get("aliases", ())]
        source = next((written[name] for name in names if name in written), None)
        where = f"{path}.{field['name']}"
        if source is None:
            if "default" not in field:
                problems.append(f"{where}: new field without a default (old data has none)")
            continue
        problems.extend(_check(source["type"], field["type"], where))
    return problems
