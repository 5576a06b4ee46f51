"""Templates rendered safely: Jinja2's sandbox, the trigger's fields only, output capped (pure).

A template sees ``kind``, ``pipeline``, ``subject_id``, ``summary``, ``details``, ``severity``,
``occurred_at``, ``trace_id``, the run's ``approval`` (``decision``, ``by``, ``reason``) and
``links`` (``console``, ``run``, ``approve``, ``reject``), and in a digest ``count`` and
``items``. The sandbox refuses attribute access to anything unsafe (no ``__class__`` walk, no
calls into Python); an unknown name renders empty. A template that does not parse is refused
when the workflow is saved (:func:`check`), one that fails at render time raises
:class:`TemplateFailed` (fatal for the record: the same input fails the same way).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from jinja2 import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from synapseops.errors import TemplateFailed

MAX_OUTPUT_CHARS = 20_000
_ENV = ImmutableSandboxedEnvironment(autoescape=False, trim_blocks=True, lstrip_blocks=True)
_HTML_ENV = ImmutableSandboxedEnvironment(autoescape=True, trim_blocks=True, lstrip_blocks=True)


@lru_cache(maxsize=512)
def _compiled(source: str, html: bool) -> Any:
    return (_HTML_ENV if html else _ENV).from_string(source)


def check(source: str) -> str | None:
    """Why ``source`` is not a template (None when it is one)."""
    try:
        _compiled(source, False)
    except TemplateError as exc:
        return f"template does not parse: {exc}"
    return None


def render(source: str, context: dict[str, Any], *, html: bool = False) -> str:
    """``source`` rendered with ``context``; HTML-escaped values when ``html``."""
    try:
        text = str(_compiled(source, html).render(**context))
    except TemplateError as exc:
        raise TemplateFailed(f"template failed: {exc}") from exc
    except (ArithmeticError, TypeError, ValueError, KeyError, AttributeError) as exc:
        raise TemplateFailed(f"template failed: {type(exc).__name__}: {exc}") from exc
    return text[:MAX_OUTPUT_CHARS]
