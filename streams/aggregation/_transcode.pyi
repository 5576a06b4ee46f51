# Types of the compiled transcoder (streams/aggregation/_transcode.pyx).
from collections.abc import Callable
from typing import Any

SCHEMA_DIGEST: str

def transcode(
    value: bytes, topic: bytes, partition: int, offset: int, schema_id: int
) -> bytes | None: ...
def transcode_batch(
    messages: list[Any],
    topic: bytes,
    schema_id: int,
    fallback: Callable[[Any], bytes | None],
) -> tuple[bytes, list[int], list[tuple[int, int]], int]: ...
