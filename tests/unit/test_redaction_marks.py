"""The scrubber's shortcuts (a text without any shape rule's mark skips the shape rules; a text
skips each rule whose own marks it lacks) hide exactly what the rules hide: every text, ASCII
or not, scrubbed the same with and without them."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from synapseops import redaction, secret_shapes
from synapseops.redaction import Scrubber

# Pieces of every shape rule, near misses and neighbours, so the texts drawn hit the rules.
PIECES = [
    "Authorization: ", "authorization=", '"Cookie": "', "X-Api-Key:", "api-key", "x-auth-token",
    "X-Shopify-Hmac-Sha256", "Stripe-Signature: t=1,v1=", "Bearer ", "basic ", "BASIC ",
    "https://", "user:", "pw", "@host", "?token=", "&sig=", ";key=", "whsec_", "sk_live_",
    "rk_test_", "xoxb-", "ghp_", "github_pat_", "shpat_", "AKIA", "ASIA", "eyJ", ".", "_", "-",
    "=", ":", '"', "'", " ", "\n", "\\", "abc123", "ABCDEFGHIJKLMNOP", "0123456789abcdef",
    "\u017f", "\u0131", "\u0130", "\u212a", "signature", "ſignature", "cooKie", "é", "%2F",
]  # fmt: skip


# One text each rule hides, and every sensitive header's value.
SAMPLES = [
    "Bearer abc123defg",
    "basic dXNlcjpw4XNz",
    "postgres://u:secret@db",
    "/x?api_key=abc",
    "whsec_abcdef12",
    "sk_live_abcdef12",
    "rk_test_abcdef12",
    "xoxb-1234567890ab",
    "ghs_abcdefghijklmnopqrst12",
    "github_pat_abcdefghijklmnopqrst",
    "shpat_abcdefghijklmnop",
    "AKIAABCDEFGHIJKLMNOP",
    "eyJabcdefgh.ijklmnopq.rstuvwxyz",
    *(f"{name}: v" for name in sorted(redaction.SENSITIVE_HEADERS)),
    *(f'"{name.upper()}": "v"' for name in sorted(redaction.SENSITIVE_HEADERS)),
]
PIECES += SAMPLES


def _every_rule(text: str) -> str:
    text = secret_shapes._HEADER_VALUE.sub(secret_shapes._hide_header_value, text)
    for rule, replacement in secret_shapes._PATTERNS:
        text = rule.sub(replacement, text)
    return text


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(PIECES) | st.text(max_size=6), max_size=14))
def test_the_shortcut_hides_what_every_rule_hides(parts: list[str]) -> None:
    text = "".join(parts)
    assert Scrubber()._scrub(text) == _every_rule(text)


def test_no_text_a_rule_hides_takes_the_shortcut() -> None:
    for sample in SAMPLES:
        assert _every_rule(sample) != sample, sample  # the sample is one the rules hide
        assert Scrubber()._scrub(sample) == _every_rule(sample), sample
        # ... and next to the marks of every other rule, in a URL and in a JSON member
        for text in (f"https://host/x?{sample}&b=1", f'{{"note": "{sample} via api-key"}}'):
            assert Scrubber()._scrub(text) == _every_rule(text), text


def test_every_rule_has_marks_and_every_mark_is_lower_case() -> None:
    assert len(secret_shapes._RULE_MARKS) == len(secret_shapes._PATTERNS)
    for mark in secret_shapes._SHAPE_MARKS:
        assert mark and mark == mark.lower(), mark


def test_a_plain_text_comes_back_as_is_and_a_token_is_still_hidden() -> None:
    assert Scrubber()._scrub("Jane Doe, 12 Main St") == "Jane Doe, 12 Main St"
    assert Scrubber()._scrub("paid with sk_live_abcdef123456") == "paid with **hidden**"
