"""Where Avro schemas live and how a 4-byte schema id names one.

:class:`SchemaStore` is the interface the serde needs: ``register``, ``get`` by id, ``latest``
of a subject. Two implementations:

- :class:`LocalSchemaStore` needs no server. The schemas are the versioned files
  ``schemas/avro/<subject>/v<N>.avsc``; a schema's id is the low 31 bits of the CRC-64-AVRO
  fingerprint of its Parsing Canonical Form, so every process on every machine computes the
  same id for the same schema without talking to anyone (31 bits keeps it a positive signed
  int, as the Confluent wire format and Java readers expect).
- :class:`ConfluentRegistryStore` speaks the Confluent Schema Registry REST API; chosen by
  :func:`schema_store` when ``SYNAPSEOPS_SCHEMA_REGISTRY_URL`` is set.

With a registry, a process registers the subjects it writes at start
(:func:`register_schemas`: every ``schemas/avro/<subject>/v<N>.avsc``, oldest first, so the
registry's compatibility check sees the same history) and pins the ids it got: from then on
``latest`` of those subjects — the schema this process writes with and reads into — is
answered from memory, so encoding a record never waits on the registry. Ids by number are
cached for good (they never change). :func:`schema_store` gives one store per registry per
process, so the ids registered at start are the ones every encoder uses. Calls that may
still reach the registry block: async code runs them off the loop (``asyncio.to_thread``).

Errors: an unknown id raises :class:`~synapseops.errors.Undecodable` (the bytes name a schema
nobody knows); an unknown subject raises :class:`~synapseops.errors.ConfigurationError`; a
schema that does not parse or that the registry refuses raises
:class:`~synapseops.errors.SchemaInvalid`; an unreachable registry raises a retryable error.
"""

from __future__ import annotations

import json
import re
import threading
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any
from urllib.parse import quote

import fastavro
import httpx
from fastavro.schema import fingerprint, to_parsing_canonical_form

from synapseops.errors import (
    ConfigurationError,
    SchemaInvalid,
    TargetRejected,
    TargetTimeout,
    TargetUnavailable,
    Undecodable,
)
from synapseops.settings import SchemaRegistrySettings

AVRO_DIR = Path(__file__).resolve().parent / "avro"
ParsedSchema = dict[str, Any]
# fastavro's parsed form of a schema; what fastavro's readers and writers take.
SchemaSource = str | dict[str, Any]
_VERSION_FILE = re.compile(r"^v(\d+)\.avsc$")


def parse(schema: SchemaSource) -> ParsedSchema:
    """A schema (JSON text or dict) parsed by fastavro; :class:`SchemaInvalid` if not Avro."""
    try:
        raw = json.loads(schema) if isinstance(schema, str) else schema
        parsed = fastavro.parse_schema(raw)
    except (ValueError, TypeError, KeyError, fastavro.schema.SchemaParseException) as exc:
        raise SchemaInvalid(f"not a valid Avro schema: {exc}") from exc
    if not isinstance(parsed, dict):
        # Every subject here is a named record; a bare "string" or a union is not a subject.
        raise SchemaInvalid(f"a subject's schema must be a record, got {type(parsed).__name__}")
    return parsed


def schema_id(schema: SchemaSource) -> int:
    """The store-independent id: low 31 bits of the CRC-64-AVRO fingerprint of the PCF."""
    canonical = to_parsing_canonical_form(parse(schema))
    return int(fingerprint(canonical, "CRC-64-AVRO"), 16) & 0x7FFF_FFFF


class SchemaStore(ABC):
    """Schemas by subject and by id. Implementations are safe to share between threads."""

    @abstractmethod
    def register(self, subject: str, schema: SchemaSource) -> int:
        """Add ``schema`` as the subject's newest version (no-op if it already is one); its id."""

    @abstractmethod
    def get(self, schema_id: int) -> ParsedSchema:
        """The parsed schema with this id; :class:`Undecodable` if no such id."""

    @abstractmethod
    def latest(self, subject: str) -> tuple[int, ParsedSchema]:
        """``(id, parsed schema)`` of the subject's newest version."""


def local_versions(root: Path = AVRO_DIR) -> dict[str, list[tuple[Path, str]]]:
    """Subject → its ``(file, schema text)`` versions under ``root``, oldest first."""
    if not root.is_dir():
        raise ConfigurationError(f"schema folder {root} does not exist")
    found: dict[str, list[tuple[Path, str]]] = {}
    for subject_dir in sorted(path for path in root.iterdir() if path.is_dir()):
        files = []
        for path in subject_dir.iterdir():
            match = _VERSION_FILE.match(path.name)
            if match:
                files.append((int(match.group(1)), path))
        found[subject_dir.name] = [
            (path, path.read_text(encoding="utf-8")) for _, path in sorted(files)
        ]
    return found


class LocalSchemaStore(SchemaStore):
    """Schemas from ``<root>/<subject>/v<N>.avsc``; ids from fingerprints (see module doc).

    ``register`` adds to this process only: the files are the source of truth, so a schema
    that other processes must decode belongs in a new ``v<N+1>.avsc``.
    """

    def __init__(self, root: Path = AVRO_DIR) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[int, ParsedSchema] = {}
        self._canonical: dict[int, str] = {}
        self._versions: dict[str, list[int]] = {}
        for subject, versions in local_versions(root).items():
            for path, text in versions:
                try:
                    self._add(subject, text)
                except SchemaInvalid as exc:
                    raise ConfigurationError(f"{path}: {exc}") from exc

    def _add(self, subject: str, schema: SchemaSource) -> int:
        parsed = parse(schema)
        new_id = schema_id(parsed)
        full = json.dumps(_semantic_form(parsed), sort_keys=True)
        with self._lock:
            known = self._canonical.get(new_id)
            if known is not None and known != full:
                # Same bytes on the wire but a different schema (only a default or a logical
                # type changed): one id cannot name both, so refuse rather than guess.
                raise SchemaInvalid(
                    f"schema for {subject} has the id {new_id} of a different schema; "
                    "a new version must change what is written (add or change a field)"
                )
            self._by_id[new_id] = parsed
            self._canonical[new_id] = full
            versions = self._versions.setdefault(subject, [])
            if new_id not in versions:
                versions.append(new_id)
        return new_id

    def register(self, subject: str, schema: SchemaSource) -> int:
        return self._add(subject, schema)

    def get(self, schema_id: int) -> ParsedSchema:
        try:
            return self._by_id[schema_id]
        except KeyError:
            raise Undecodable(f"unknown schema id {schema_id}") from None

    def latest(self, subject: str) -> tuple[int, ParsedSchema]:
        versions = self._versions.get(subject)
        if not versions:
            raise ConfigurationError(f"no schema for subject {subject!r} under schemas/avro")
        return versions[-1], self._by_id[versions[-1]]

    def subjects(self) -> list[str]:
        return sorted(self._versions)

    def versions(self, subject: str) -> list[tuple[int, ParsedSchema]]:
        """Every version of the subject, oldest first, as ``(id, parsed schema)``."""
        return [(sid, self._by_id[sid]) for sid in self._versions.get(subject, [])]


class ConfluentRegistryStore(SchemaStore):
    """The Confluent Schema Registry REST API over httpx.

    Schemas by id never change, so they are cached for good; ``latest`` is cached for
    ``latest_ttl_s`` so a hot encoder does not ask the registry on every record.
    """

    _CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"

    def __init__(self, url: str, *, timeout_s: float = 5.0, latest_ttl_s: float = 30.0) -> None:
        self._client = httpx.Client(
            base_url=url.rstrip("/"),
            timeout=timeout_s,
            headers={"Accept": self._CONTENT_TYPE},
        )
        self._latest_ttl_s = latest_ttl_s
        self._lock = threading.Lock()
        self._by_id: dict[int, ParsedSchema] = {}
        self._latest: dict[str, tuple[float, int, ParsedSchema]] = {}
        # Subjects registered at start: the id of the version this process writes.
        self._pinned: dict[str, tuple[int, ParsedSchema]] = {}

    def register_subjects(self, root: Path = AVRO_DIR) -> dict[str, int]:
        """Register every version of every subject under ``root`` (oldest first; the registry
        answers the existing id for a version it has) and pin each subject's newest; the
        pinned ids by subject. Blocking: call it at start, or off the event loop."""
        pinned: dict[str, int] = {}
        for subject, versions in local_versions(root).items():
            for _, text in versions:
                pinned[subject] = self.register(subject, text)
            if subject in pinned:
                with self._lock:
                    self._pinned[subject] = (pinned[subject], self._by_id[pinned[subject]])
        return pinned

    def close(self) -> None:
        self._client.close()

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            response = self._client.request(
                method,
                path,
                content=None if body is None else json.dumps(body),
                headers={"Content-Type": self._CONTENT_TYPE} if body is not None else None,
            )
        except httpx.TimeoutException as exc:
            raise TargetTimeout(f"schema registry timed out on {method} {path}") from exc
        except httpx.HTTPError as exc:
            raise TargetUnavailable(
                f"schema registry unreachable on {method} {path}: {exc}"
            ) from exc
        if response.status_code >= 500:
            raise TargetUnavailable(
                f"schema registry answered {response.status_code} on {method} {path}",
                status=response.status_code,
            )
        if response.status_code >= 400:
            raise _registry_error(response, method, path)
        try:
            return response.json()
        except ValueError as exc:
            raise TargetUnavailable(f"schema registry sent no JSON on {method} {path}") from exc

    def register(self, subject: str, schema: SchemaSource) -> int:
        parsed = parse(schema)  # refuse a broken schema before it leaves the process
        text = schema if isinstance(schema, str) else json.dumps(schema)
        answer = self._call("POST", f"/subjects/{_quote(subject)}/versions", {"schema": text})
        new_id = int(answer["id"])
        with self._lock:
            self._by_id[new_id] = parsed
            self._latest.pop(subject, None)
        return new_id

    def get(self, schema_id: int) -> ParsedSchema:
        with self._lock:
            cached = self._by_id.get(schema_id)
        if cached is not None:
            return cached
        try:
            answer = self._call("GET", f"/schemas/ids/{schema_id}")
        except (TargetRejected, ConfigurationError) as exc:
            raise Undecodable(f"unknown schema id {schema_id}: {exc}") from exc
        parsed = parse(answer["schema"])
        with self._lock:
            self._by_id[schema_id] = parsed
        return parsed

    def latest(self, subject: str) -> tuple[int, ParsedSchema]:
        """The pinned version of a subject registered at start (no request), else the
        registry's newest (cached for ``latest_ttl_s``)."""
        now = time.monotonic()
        with self._lock:
            pinned = self._pinned.get(subject)
            cached = self._latest.get(subject)
        if pinned is not None:
            return pinned
        if cached is not None and now - cached[0] < self._latest_ttl_s:
            return cached[1], cached[2]
        answer = self._call("GET", f"/subjects/{_quote(subject)}/versions/latest")
        latest_id, parsed = int(answer["id"]), parse(answer["schema"])
        with self._lock:
            self._by_id[latest_id] = parsed
            self._latest[subject] = (now, latest_id, parsed)
        return latest_id, parsed


def _quote(subject: str) -> str:
    # Subjects are free text in the registry ("orders-value", "io.x.Order"); keep "/" out.
    return quote(subject, safe="")


def _registry_error(response: httpx.Response, method: str, path: str) -> Exception:
    """Map the registry's 4xx answers onto the error tree."""
    try:
        detail = response.json()
        code, message = int(detail.get("error_code", 0)), str(detail.get("message", ""))
    except ValueError:
        code, message = 0, response.text[:200]
    where = f"{method} {path}: {response.status_code} {message}".strip()
    if response.status_code == 404 and code in (40401, 40402):
        return ConfigurationError(f"schema registry has no such subject/version ({where})")
    if response.status_code in (409, 422):
        return SchemaInvalid(f"schema registry refused the schema ({where})")
    return TargetRejected(f"schema registry rejected {where}", status=response.status_code)


def _semantic_form(node: Any) -> Any:
    """The schema without docs and fastavro's private ``__`` keys: what reading depends on."""
    if isinstance(node, dict):
        return {
            key: _semantic_form(value)
            for key, value in node.items()
            if key != "doc" and not key.startswith("__")
        }
    if isinstance(node, list):
        return [_semantic_form(item) for item in node]
    return node


_shared: dict[tuple[str, float], ConfluentRegistryStore] = {}
_shared_lock = threading.Lock()


def schema_store(registry: SchemaRegistrySettings | None = None) -> SchemaStore:
    """The store this deployment uses: the registry if a URL is configured (one store per
    registry in this process, so ids registered at start are everyone's), else the files."""
    registry = registry or SchemaRegistrySettings()
    if registry.url:
        key = (registry.url, registry.timeout_s)
        with _shared_lock:
            store = _shared.get(key)
            if store is None:
                store = _shared[key] = ConfluentRegistryStore(
                    registry.url, timeout_s=registry.timeout_s
                )
        return store
    return LocalSchemaStore()


def register_schemas(registry: SchemaRegistrySettings | None = None) -> dict[str, int]:
    """At a process's start: register this repository's subjects with the configured registry
    and pin their ids (see the module doc); nothing to do without a registry. Blocking.

    Raises a retryable error while the registry is unreachable and
    :class:`SchemaInvalid` when it refuses a version (incompatible with what it holds).
    """
    store = schema_store(registry)
    if not isinstance(store, ConfluentRegistryStore):
        return {}
    return store.register_subjects()
