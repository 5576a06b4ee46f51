"""The JSON mapping engine of the API Integration service: pure, deterministic, no I/O.

A mapping is rule JSON (``{"rules": [...]}``, one rule per target field; the language is in
``README.md`` next to this file). Compile it once, apply it to every event::

    mapping = compile_mapping(spec)              # MappingSpecInvalid lists every problem
    result = mapping.apply(load_payload(body))   # never raises for a bad payload
    if result.ok:
        send(dump_output(result.output))         # Decimals stay exact
    else:
        for error in result.errors:              # every failed rule, in one pass
            log(error.message)                   # rule 3 (erp.total): to_float failed on ...
"""

from streams.mapping.conditions import json_equal
from streams.mapping.engine import (
    CompiledMapping,
    MappingResult,
    apply_mapping,
    compile_mapping,
)
from streams.mapping.errors import RuleError
from streams.mapping.money import currency_exponent
from streams.mapping.paths import resolve
from streams.mapping.payload import dump_output, jsonable, load_payload
from streams.mapping.rules import MappingSpec, mapping_json_schema
from synapseops.errors import MappingFailed, MappingSpecInvalid

__all__ = [
    "CompiledMapping",
    "MappingFailed",
    "MappingResult",
    "MappingSpec",
    "MappingSpecInvalid",
    "RuleError",
    "apply_mapping",
    "compile_mapping",
    "currency_exponent",
    "dump_output",
    "json_equal",
    "jsonable",
    "load_payload",
    "mapping_json_schema",
    "resolve",
]
