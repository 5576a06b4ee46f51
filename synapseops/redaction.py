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
2. **Shapes of secrets nobody told us about**: the values of ``Authorization``, ``Cookie``,
   signature and API-key headers (as ``Name: value`` lines, JSON members or Python reprs),
   ``Bearer``/``Basic`` tokens, ``user:password@`` in URLs, ``token=``-like query parameters,
   and vendor token shapes (``whsec_``, ``sk_live_``, ``xoxb-``, ``ghp_``, ``shpat_``,
   ``AKIA…``, JWTs).

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
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

HIDDEN = "**hidden**"
MIN_SECRET_CHARS = 8
MEMO_TEXT_CHARS, MEMO_ENTRIES = 200, 8192  # what Scrubber remembers having scrubbed

# Header names whose values are secrets whatever they hold (n8n hides the same family).
SENSITIVE_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "api-key",
        "x-auth-token",
        "x-access-token",
        "x-shopify-access-token",
        "x-shopify-hmac-sha256",
        "x-hub-signature",
        "x-hub-signature-256",
        "webhook-signature",
        "stripe-signature",
    }
)
_SENSITIVE_PARTS = (
    "token",
    "secret",
    "password",
    "signature",
    "api-key",
    "apikey",
    "cookie",
    "authorization",
    "credential",
)

_JSON_SHORT = {'"': '\\"', "\\": "\\\\", "/": "\\/", "\b": "\\b", "\f": "\\f"}
_JSON_SHORT.update({"\n": "\\n", "\r": "\\r", "\t": "\\t"})

_HEADER_NAMES = "|".join(
    re.escape(name) for name in sorted(SENSITIVE_HEADERS, key=len, reverse=True)
)
# `Name: value`, `"name": "value"`, `'Name': 'value'`, `name=value`: a scheme word stays
# readable, the value up to its closing quote (or the line end, or an escape) is hidden.
_HEADER_VALUE = re.compile(
    rf"(?i)(?P<head>\b(?:{_HEADER_NAMES})\b[\"']?\s*[:=]\s*)"
    r"(?:(?P<quote>[\"'])(?P<qscheme>(?:bearer|basic|token|digest)\s+)?"
    r"(?P<quoted>(?:\\.|(?!(?P=quote))[^\\\r\n])*)(?P<end>(?P=quote))?"
    r"|(?P<scheme>(?:bearer|basic|token|digest)\s+)?(?P<bare>[^\r\n\"'\\]+))"
)
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # A scheme word then a token with at least one digit or symbol ("Basic authentication"
    # is prose, "Basic dXNlcjpwYXNz" is a credential).
    (
        re.compile(
            r"\b(Bearer|Basic|bearer|basic|BEARER|BASIC)(\s+)"
            r"(?=[A-Za-z0-9._~+/-]*[0-9._~+/-])[A-Za-z0-9._~+/-]{8,}=*"
        ),
        rf"\1\2{HIDDEN}",
    ),
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@\"']+:)[^@\s/\"']+(@)"), rf"\1{HIDDEN}\2"),
    (
        re.compile(
            r"(?i)([?&;](?:access_token|refresh_token|id_token|token|api_key|apikey|key|"
            r"secret|client_secret|password|passwd|signature|sig)=)[^&\s\"'#]+"
        ),
        rf"\1{HIDDEN}",
    ),
    (re.compile(r"\bwhsec_[A-Za-z0-9+/=_-]{6,}"), HIDDEN),
    (re.compile(r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{6,}"), HIDDEN),
    (re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"), HIDDEN),
    (re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})"), HIDDEN),
    (re.compile(r"\bshp(?:at|ss|ca|pa|ua)_[A-Za-z0-9]{16,}"), HIDDEN),
    (re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), HIDDEN),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"), HIDDEN),
)
# A text none of the shape rules above can match contains none of these (lowercased): each
# rule's match holds one of them — a header name's tail, a scheme word, "://", the "=" of a
# query parameter, a vendor prefix. Eleven regex passes become a few substring tests.
_SHAPE_MARKS = (
    "authorization", "cookie", "api-key", "auth-token", "access-token", "shopify-hmac-sha256",
    "signature", "bearer", "basic", "://", "=", "whsec_", "_live_", "_test_", "xox",
    "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "shp", "akia", "asia", "eyj",
)  # fmt: skip
_ANY_MARK = re.compile("|".join(re.escape(mark) for mark in _SHAPE_MARKS))


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

    def _scrub(self, text: str) -> str:
        patterns = self._patterns()
        if patterns is not None:
            literal, flexible = patterns
            # The slow, thorough pass only where an escape can hide a character. It runs
            # first: a secret whose first character is escaped (``\\"…``) is then hidden with
            # its escape, where the literal pass would leave a dangling backslash behind and
            # break the JSON it sits in.
            if "\\" in text or "%" in text or "+" in text:
                text = flexible.sub(HIDDEN, text)
            text = literal.sub(HIDDEN, text)
        # ASCII only: under IGNORECASE a few other letters match ASCII ones (U+017F is "s").
        if text.isascii() and _ANY_MARK.search(text.lower()) is None:
            return text
        text = _HEADER_VALUE.sub(_hide_header_value, text)
        for rule, replacement in _PATTERNS:
            text = rule.sub(replacement, text)
        return text


def _hide_header_value(match: re.Match[str]) -> str:
    if match.group("quote"):
        scheme, end = match.group("qscheme") or "", match.group("end") or ""
        return f"{match.group('head')}{match.group('quote')}{scheme}{HIDDEN}{end}"
    return f"{match.group('head')}{match.group('scheme') or ''}{HIDDEN}"


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
    if isinstance(document, str):
        return scrub(document)
    if isinstance(document, Mapping):
        return {scrub(str(key)): scrub_document(value) for key, value in document.items()}
    if isinstance(document, list | tuple):
        return [scrub_document(item) for item in document]
    return document


def is_sensitive_header(name: str, extra: Iterable[str] = ()) -> bool:
    return _sensitive(name.lower(), frozenset(item.lower() for item in extra))


def _sensitive(lowered: str, extra: frozenset[str]) -> bool:
    """``lowered`` (a header name in lower case) bears a secret; ``extra`` is lower case too."""
    return (
        lowered in SENSITIVE_HEADERS
        or lowered in extra
        or any(part in lowered for part in _SENSITIVE_PARTS)
    )


def scrub_headers(headers: Mapping[str, str], *, also: Iterable[str] = ()) -> dict[str, str]:
    """A copy of HTTP headers: secret-bearing names keep only ``**hidden**``, every other
    value is scrubbed. ``also`` names more headers to hide (a credential's ``header_name``)."""
    extra = frozenset(name.lower() for name in also if name)
    return {
        name: HIDDEN if _sensitive(name.lower(), extra) else scrub(str(value))
        for name, value in headers.items()
    }
