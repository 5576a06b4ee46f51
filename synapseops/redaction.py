"""The one scrubber: every text a process persists, publishes or logs goes through :func:`scrub`.

Two kinds of rule, applied in this order:

1. **Known secret values.** Every secret a process holds is remembered here: the ``SecretStr``
   fields of :class:`~synapseops.settings.Settings` (API token, Stripe webhook secrets, the
   credentials key, the database URL's password — remembered whenever a Settings is built),
   every credential the process decrypts or encrypts (:mod:`sinks.integration.credentials`),
   and anything else a module passes to :func:`remember`. A known value is hidden in every spelling
   a text can carry it in: as is, JSON-escaped or percent-encoded (any mixture, character by
   character: ``\\u0061``, ``\\"``, ``%2F``, ``+``), and base64 (standard and URL-safe, whole or
   inside a longer base64 text at any of the three byte alignments, which covers the ``Basic``
   header of ``user:pass``).
2. **Shapes of secrets nobody told us about** (:mod:`synapseops.secret_shapes`): the values
   of ``Authorization``, ``Cookie``, signature and API-key headers (as ``Name: value``
   lines, JSON members or Python reprs), ``Bearer``/``Basic`` tokens, ``user:password@`` in
   URLs, ``token=``-like query parameters, and vendor token shapes (``whsec_``, ``sk_live_``,
   ``xoxb-``, ``ghp_``, ``shpat_``, ``AKIA…``, JWTs).

Everything hidden becomes ``**hidden**``. Values shorter than :data:`MIN_SECRET_CHARS` are not
remembered: hiding every ``"pw"`` would wreck every text and still protect nothing (the
credentials API refuses such short secrets).

The set of known values is process-wide on purpose: the logging filter, the failure router,
the Run writer and the dead-letter store all reach the same set without it being threaded
through every signature, and a secret seen once anywhere in the process is hidden everywhere.
"""

from __future__ import annotations

import base64
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import unquote, urlsplit

from synapseops.secret_shapes import _SENSITIVE_PARTS, hide_shapes
from synapseops.secret_shapes import HIDDEN as HIDDEN
from synapseops.secret_shapes import SENSITIVE_HEADERS as SENSITIVE_HEADERS

MIN_SECRET_CHARS = 8
MEMO_TEXT_CHARS, MEMO_ENTRIES = 200, 8192  # what Scrubber remembers having scrubbed

_JSON_SHORT = {'"': '\\"', "\\": "\\\\", "/": "\\/", "\b": "\\b", "\f": "\\f"}
_JSON_SHORT.update({"\n": "\\n", "\r": "\\r", "\t": "\\t"})


def _char_pattern(char: str) -> str:
    """Every way one character of a secret may be spelled in JSON or a URL."""
    ways = {re.escape(char)}
    ways.add("".join(rf"\\u(?i:{unit:04x})" for unit in _utf16_units(char)))
    if char in _JSON_SHORT:
        ways.add(re.escape(_JSON_SHORT[char]))
    encoded = "".join(f"%(?i:{byte:02x})" for byte in char.encode("utf-8"))
    ways.add(encoded)
    if char == " ":
        ways.add(r"\+")
    return "(?:" + "|".join(sorted(ways, key=len, reverse=True)) + ")"


def _utf16_units(char: str) -> list[int]:
    raw = char.encode("utf-16-be")
    return [int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2)]


def _base64_forms(secret: str) -> set[str]:
    """The base64 texts that give ``secret`` away, whole or inside longer base64."""
    data = secret.encode("utf-8")
    forms: set[str] = set()
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        whole = encode(data).decode("ascii")
        forms.update({whole, whole.rstrip("=")})
        for shift in range(3):
            # With `shift` bytes before it, the characters that depend on the secret's bytes
            # alone run from ceil(8*shift/6) to floor(8*(shift+len)/6).
            text = encode(b"\0" * shift + data + b"\0\0").decode("ascii")
            core = text[-(-8 * shift // 6) : 8 * (shift + len(data)) // 6]
            if len(core) >= MIN_SECRET_CHARS:
                forms.add(core)
    return forms


class Scrubber:
    """The known secret values of a process and the compiled rules that hide them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: set[str] = set()
        self._compiled: tuple[re.Pattern[str], re.Pattern[str]] | None = None
        # Short texts already scrubbed (a document's keys and common values repeat in every
        # record); a new secret replaces the dict, so no answer from before it is reused.
        self._memo: dict[str, str] = {}

    def remember(self, *values: str | None) -> None:
        fresh = {value for value in values if value and len(value) >= MIN_SECRET_CHARS}
        with self._lock:
            if fresh - self._secrets:
                self._secrets |= fresh
                self._compiled = None
                self._memo = {}

    def known(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._secrets)

    def _patterns(self) -> tuple[re.Pattern[str], re.Pattern[str]] | None:
        compiled = self._compiled  # compiled already: no lock (``remember`` only drops it)
        if compiled is not None:
            return compiled
        with self._lock:
            if self._compiled is None and self._secrets:
                literal: set[str] = set()
                flexible: set[str] = set()
                for secret in self._secrets:
                    literal.add(re.escape(secret))
                    literal.update(re.escape(form) for form in _base64_forms(secret))
                    # JSON-escaped or percent-encoded, in any mixture per character.
                    flexible.add("".join(_char_pattern(char) for char in secret))
                # Longest first: a secret that contains another is hidden whole.
                self._compiled = (
                    re.compile("|".join(sorted(literal, key=len, reverse=True))),
                    re.compile("|".join(sorted(flexible, key=len, reverse=True))),
                )
            return self._compiled

    def scrub(self, text: str) -> str:
        memo = self._memo  # taken before the patterns: a secret learnt meanwhile drops it
        hit = memo.get(text)
        if hit is not None:
            return hit
        scrubbed = self._scrub(text)
        if len(text) <= MEMO_TEXT_CHARS:
            if len(memo) >= MEMO_ENTRIES:
                memo.clear()
            memo[text] = scrubbed
        return scrubbed

    def document(self, document: Any) -> Any:
        """:func:`scrub_document`: the memo is read inline, each string's own call only made
        on a miss (a mapped order holds ~100 strings, most of them keys seen before)."""
        memo, scrub = self._memo, self.scrub

        def walk(value: Any) -> Any:
            kind = type(value)
            if kind is str:
                return memo.get(value) or scrub(value)
            if kind is dict:
                return {
                    (memo.get(key) or scrub(key)) if type(key) is str else scrub(str(key)): walk(
                        item
                    )
                    for key, item in value.items()
                }
            if kind is list:
                return [walk(item) for item in value]
            if kind in _PLAIN:
                return value
            return _walk_any(value, walk)

        return walk(document)

    def _scrub(self, text: str) -> str:
        # A known value is at least MIN_SECRET_CHARS long, and so is each of its spellings.
        patterns = self._patterns() if len(text) >= MIN_SECRET_CHARS else None
        if patterns is not None:
            literal, flexible = patterns
            # The slow, thorough pass only where an escape can hide a character. It runs
            # first: a secret whose first character is escaped (``\\"…``) is then hidden with
            # its escape, where the literal pass would leave a dangling backslash behind and
            # break the JSON it sits in.
            if "\\" in text or "%" in text or "+" in text:
                text = flexible.sub(HIDDEN, text)
            text = literal.sub(HIDDEN, text)
        return hide_shapes(text)


_SCRUBBER = Scrubber()


def remember(*values: str | None) -> None:
    """Hide these values (and every encoding of them) from now on, in this whole process."""
    _SCRUBBER.remember(*values)


def remember_url_password(url: str | None) -> None:
    """Remember the password of ``scheme://user:password@host`` (and its decoded form)."""
    if not url or "://" not in url:
        return
    try:
        password = urlsplit(url).password
    except ValueError:
        return
    if password:
        remember(password, unquote(password))


def remember_secret_fields(model: Any) -> None:
    """Remember every ``SecretStr`` of a pydantic model, nested models, lists and dicts
    included; comma-separated lists (rotations) part by part; URLs' passwords too."""
    from pydantic import BaseModel, SecretStr

    def visit(value: Any) -> None:
        if isinstance(value, SecretStr):
            text = value.get_secret_value()
            remember(text, *(part.strip() for part in text.split(",")))
            remember_url_password(text)
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                visit(getattr(value, name, None))
        elif isinstance(value, Mapping):
            for item in value.values():
                visit(item)
        elif isinstance(value, list | tuple | set | frozenset):
            for item in value:
                visit(item)

    visit(model)


def known_secrets() -> frozenset[str]:
    """The values remembered so far (for tests and for a process that hands them on)."""
    return _SCRUBBER.known()


def scrub(text: str) -> str:
    """``text`` with every known secret and every secret-shaped value replaced by ``**hidden**``."""
    return _SCRUBBER.scrub(text)


def scrub_bytes(data: bytes) -> bytes:
    """:func:`scrub` over bytes; bytes that are not UTF-8 pass through exactly."""
    text = data.decode("utf-8", "surrogateescape")
    scrubbed = scrub(text)
    return data if scrubbed == text else scrubbed.encode("utf-8", "surrogateescape")


def scrub_document(document: Any) -> Any:
    """A JSON-like document with every string (keys too) scrubbed; other values kept."""
    return _SCRUBBER.document(document)


# Values a document walk keeps as they are, by exact type (a subclass goes the general way).
_PLAIN = frozenset({int, float, bool, type(None), Decimal})


def _walk_any(value: Any, walk: Callable[[Any], Any]) -> Any:
    """The document walk for what is not exactly a str, dict, list or plain scalar."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, Mapping):
        return {scrub(str(key)): walk(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [walk(item) for item in value]
    return value


def is_sensitive_header(name: str, extra: Iterable[str] = ()) -> bool:
    return _sensitive(name.lower(), frozenset(item.lower() for item in extra))


def _sensitive(lowered: str, extra: frozenset[str]) -> bool:
    """``lowered`` (a header name in lower case) bears a secret; ``extra`` is lower case too."""
    named = _SENSITIVE_NAMES.get(lowered)
    if named is None:
        named = lowered in SENSITIVE_HEADERS or any(part in lowered for part in _SENSITIVE_PARTS)
        if len(_SENSITIVE_NAMES) >= MEMO_ENTRIES:
            _SENSITIVE_NAMES.clear()
        _SENSITIVE_NAMES[lowered] = named
    return named or lowered in extra


# Header names already judged (the same few names come with every record), lower case.
_SENSITIVE_NAMES: dict[str, bool] = {}


def scrub_headers(headers: Mapping[str, str], *, also: Iterable[str] = ()) -> dict[str, str]:
    """A copy of HTTP headers: secret-bearing names keep only ``**hidden**``, every other
    value is scrubbed. ``also`` names more headers to hide (a credential's ``header_name``)."""
    extra = frozenset(name.lower() for name in also if name)
    return {
        name: HIDDEN if _sensitive(name.lower(), extra) else scrub(str(value))
        for name, value in headers.items()
    }
