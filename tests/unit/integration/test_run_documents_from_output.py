"""A Run's request document taken from the mapped output (sinks/integration/run_documents.py)
is the one the body's bytes give: same JSON text, numbers digit for digit, secrets hidden."""

from __future__ import annotations

import pytest

from sinks.integration.run_documents import capped_document, json_text
from streams.mapping import dump_output, load_payload
from synapseops.redaction import HIDDEN, remember
from tests.unit.mapping.test_mapping_golden import CASES, mapped_output


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_document_from_the_output_is_the_document_from_the_bytes(case: str) -> None:
    output = mapped_output(case)
    body = dump_output(output)
    from_bytes, from_output = capped_document(body), capped_document(body, output)
    assert from_output.size == from_bytes.size == len(body)
    assert json_text(from_output.shown) == json_text(from_bytes.shown)


def test_a_secret_in_the_output_is_hidden_as_in_the_bytes() -> None:
    secret = "sk_live_run_documents_from_output_1234"
    remember(secret)
    output = {"note": f"token {secret}", "nested": [{"k": secret}], "amount": load_payload(b"1.10")}
    shown = capped_document(dump_output(output), output).shown
    assert secret not in json_text(shown)
    assert shown["nested"][0]["k"] == HIDDEN
    assert json_text(shown["amount"]) == "1.10"  # the number as written, not a float
