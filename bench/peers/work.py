"""The one piece of work every peer does: a Shopify order's bytes in, the ERP order's bytes out.

Every peer imports :func:`order_mapper` from here, so all of them run the exact same Python
mapping (the project's ``streams.mapping`` engine with the checked-in golden Shopify → ERP
mapping); what differs between the rows of the table is only the runtime around it. This module
imports nothing but the standard library and ``streams.mapping``: the quixstreams peer imports it
from its own virtual environment, which has neither Faust nor our confluent-kafka.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from streams.mapping import compile_mapping, dump_output, load_payload

ROOT = Path(__file__).resolve().parents[2]
MAPPING = ROOT / "tests" / "golden" / "shopify_order_to_erp.mapping.json"
SAMPLE_ORDER = ROOT / "samples" / "shopify" / "order.json"


def order_mapper() -> Callable[[bytes], bytes]:
    """Compile the mapping once; the returned function maps one order (raises if it fails:
    the benchmark's orders are all valid, so a failure is a bug worth stopping for)."""
    mapping = compile_mapping(json.loads(MAPPING.read_text()))

    def map_order(raw: bytes) -> bytes:
        return dump_output(mapping.apply(load_payload(raw)).raise_for_errors())

    return map_order
