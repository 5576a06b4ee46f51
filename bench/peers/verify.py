"""Output verified record by record: every expected record present exactly once, byte-equal, keyed
right.

The expectation is a digest per key (BLAKE2b, 16 bytes, of the mapped value the engine gives for
that key's order). A digest that size cannot collide by accident over a few hundred thousand
records, so comparing digests is as exact as comparing the bytes, at 1/60 of the memory.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field


def digest(value: bytes) -> bytes:
    return hashlib.blake2b(value, digest_size=16).digest()


@dataclass(frozen=True)
class Verdict:
    """What one output topic held, against what it should have held."""

    expected: int
    received: int
    missing: int = 0  # expected keys without one byte-equal record
    doubled: int = 0  # keys that arrived more than once
    altered: int = 0  # records under an expected key whose bytes differ
    unexpected: int = 0  # records under a key that was never sent (or no key)
    examples: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return self.received == self.expected and not (
            self.missing or self.doubled or self.altered or self.unexpected
        )

    def summary(self) -> str:
        if self.ok:
            return f"ok ({self.received:,} exact)"
        parts = [f"{self.received:,}/{self.expected:,} received"]
        for name in ("missing", "doubled", "altered", "unexpected"):
            if count := getattr(self, name):
                parts.append(f"{count:,} {name}")
        return "FAILED: " + ", ".join(parts)


class OutputCheck:
    """Feed it every output record (:meth:`add`), then ask for the :meth:`verdict`."""

    def __init__(self, expected: Mapping[bytes, bytes], examples: int = 3) -> None:
        self._expected = expected
        self._good: dict[bytes, int] = {}  # key -> byte-equal copies seen
        self._seen: dict[bytes, int] = {}  # key -> copies seen, any content
        self._received = self._altered = self._unexpected = 0
        self._examples: list[str] = []
        self._max_examples = examples

    def add(self, key: bytes | None, value: bytes | None) -> None:
        self._received += 1
        want = self._expected.get(key) if key is not None else None
        if key is None or want is None:
            self._unexpected += 1
            self._note(f"unexpected key {key!r}")
            return
        self._seen[key] = self._seen.get(key, 0) + 1
        if value is not None and digest(value) == want:
            self._good[key] = self._good.get(key, 0) + 1
        else:
            self._altered += 1
            self._note(f"altered value under key {key.decode(errors='replace')}")

    def _note(self, line: str) -> None:
        if len(self._examples) < self._max_examples:
            self._examples.append(line)

    def verdict(self) -> Verdict:
        missing = sum(1 for key in self._expected if key not in self._good)
        doubled = sum(1 for count in self._seen.values() if count > 1)
        return Verdict(
            expected=len(self._expected),
            received=self._received,
            missing=missing,
            doubled=doubled,
            altered=self._altered,
            unexpected=self._unexpected,
            examples=tuple(self._examples),
        )
