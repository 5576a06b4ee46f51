"""The shapes of secrets nobody told us about, and the header names that bear secrets: the
second kind of rule of :mod:`synapseops.redaction` (which applies them after the known
values). Each rule comes with the marks its every match holds, so a text skips the rules whose
marks it lacks (tested against every rule at once in tests/unit/test_redaction_marks.py).
"""

from __future__ import annotations

import re

HIDDEN = "**hidden**"

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
# What each shape rule's match always holds (lower case): a header name's tail, a scheme word,
# "://", the "=" of a query parameter, a vendor prefix. A text holding none of a rule's marks
# skips that rule: a URL runs one regex pass, not eleven (37 -> ~8 us per URL here).
_HEADER_MARKS = (
    "authorization", "cookie", "api-key", "auth-token", "access-token", "shopify-hmac-sha256",
    "signature",
)  # fmt: skip
_RULE_MARKS: tuple[tuple[str, ...], ...] = (
    ("bearer", "basic"),
    ("://",),
    ("=",),
    ("whsec_",),
    ("_live_", "_test_"),
    ("xox",),
    ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
    ("shp",),
    ("akia", "asia"),
    ("eyj",),
)  # one per rule of _PATTERNS, in order
_SHAPE_MARKS = tuple(dict.fromkeys(_HEADER_MARKS + sum(_RULE_MARKS, ())))
_ANY_MARK = re.compile("|".join(re.escape(mark) for mark in _SHAPE_MARKS))


def hide_shapes(text: str) -> str:
    """``text`` with every value shaped like a secret (the second kind of rule of
    :mod:`synapseops.redaction`) replaced by ``**hidden**``."""
    # ASCII only: under IGNORECASE a few other letters match ASCII ones (U+017F is "s"),
    # so a text that is not ASCII goes through every rule.
    if not text.isascii():
        return _every_rule(text)
    lowered = text.lower()
    if _ANY_MARK.search(lowered) is None:
        return text
    # A replacement (``**hidden**`` between kept parts of the text) adds no mark, so the
    # marks of the text as it came decide for every rule.
    if any(mark in lowered for mark in _HEADER_MARKS):
        text = _HEADER_VALUE.sub(_hide_header_value, text)
    for (rule, replacement), marks in zip(_PATTERNS, _RULE_MARKS, strict=True):
        if any(mark in lowered for mark in marks):
            text = rule.sub(replacement, text)
    return text


def _every_rule(text: str) -> str:
    text = _HEADER_VALUE.sub(_hide_header_value, text)
    for rule, replacement in _PATTERNS:
        text = rule.sub(replacement, text)
    return text


def _hide_header_value(match: re.Match[str]) -> str:
    if match.group("quote"):
        scheme, end = match.group("qscheme") or "", match.group("end") or ""
        return f"{match.group('head')}{match.group('quote')}{scheme}{HIDDEN}{end}"
    return f"{match.group('head')}{match.group('scheme') or ''}{HIDDEN}"
