"""What a Run shows of a request and a response: redacted, capped, exact JSON text.

Everything passes :mod:`synapseops.redaction` first: header values of secret-bearing names
(and the credential's own header name) become ``**hidden**``; every other header value, both
bodies (every JSON string, or the text) are scrubbed of every known secret. A body above
:data:`BODY_CAP_BYTES` is stored apart (``run_bodies``, scrubbed) and the document keeps its
size. JSON goes to PostgreSQL as text cast to ``jsonb`` in SQL, so money and ids above 2^53
stay digit for digit (the driver's encoder would refuse Decimals or round through floats).
Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from streams.mapping import load_payload
from synapseops.errors import SynapseOpsError
from synapseops.redaction import scrub, scrub_bytes, scrub_document, scrub_headers

if TYPE_CHECKING:
    from sinks.integration.run_batch import RunFinish

BODY_CAP_BYTES = 16 * 1024
ERROR_CAP_CHARS = 4000


@dataclass(frozen=True)
class RecordedRequest:
    """A request as sent. ``document``: the body decoded, when the platform wrote the body
    from it (a mapped output): the Run shows it without decoding the bytes again. ``landed``:
    what the platform learnt after sending, shown after the URL (a Kafka record's
    ``/partition@offset``, digits of its own: not scrubbed, so the URL before it stays one
    text the scrubber has seen before)."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes
    document: Any = None
    landed: str = ""


@dataclass(frozen=True)
class RecordedResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class Capped:
    """A body as a row shows it (``shown``) or, above the cap, the scrubbed bytes to keep apart."""

    shown: Any
    apart: bytes | None
    size: int


# Decimals as the JSON numbers they hold, digit for digit (``1E+2`` stays a number that
# PostgreSQL reads as exactly 100): what jsonb keeps is the value, not the text.
_DOCUMENT = msgspec.json.Encoder(decimal_format="number")


def json_text(document: Any) -> str:
    """``document`` as exact JSON text (cast to jsonb by the statement). Documents hold what
    :func:`load_payload` decodes (no NaN, no infinity) and plain strings and numbers; msgspec
    writes them ~10x faster than the mapping's own writer, whose byte-exact output matters for
    what goes to targets, not here."""
    return _DOCUMENT.encode(document).decode()


def _body_document(body: bytes, document: Any = None) -> Any:
    """JSON when it is JSON, else text; scrubbed after decoding, so a secret spelled with JSON
    escapes is found as well. ``document``, when given, is ``body`` decoded already."""
    if not body:
        return None
    if document is not None:
        return scrub_document(document)
    try:
        return scrub_document(load_payload(body))
    except SynapseOpsError:
        return scrub(body.decode("utf-8", "replace"))


def capped_document(body: bytes, document: Any = None) -> Capped:
    """``body`` as a row shows it; ``document``: the body decoded, if the caller has it."""
    if len(body) > BODY_CAP_BYTES:
        return Capped(None, scrub_bytes(body), len(body))
    return Capped(_body_document(body, document), None, len(body))


def request_document(request: RecordedRequest, body: Capped, finish: RunFinish) -> dict[str, Any]:
    return {
        "method": request.method,
        "headers": scrub_headers(request.headers, also=finish.hide_headers),
        "url": scrub(request.url) + request.landed,
        "body": body.shown,
        "body_bytes": body.size,
        "source": finish.source,
    }


def response_document(
    response: RecordedResponse, body: Capped, finish: RunFinish
) -> dict[str, Any]:
    return {
        "headers": scrub_headers(response.headers, also=finish.hide_headers),
        "body": body.shown,
        "body_bytes": body.size,
    }
