"""Rendering the console's pages: one Jinja2 environment, its filters, the page dependency.

Every page handler takes :data:`UserDep` (the logged-in console user, or a redirect to
``/login``) and answers :func:`page`. ``?part=<name>`` renders only the template
``<folder>/_<name>.html`` with the same context: the live fragments a page polls for
(``data-live`` in ``console.js``), so a fragment is never a second way to compute a view.
Autoescape is on for every template.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, HTTPException, Request, status
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from api.console.registry import ServicePages
from api.console.session import SESSION_COOKIE, SessionAuth
from synapseops.errors import LoginRequired
from synapseops.principals import Principal, Role

HERE = Path(__file__).resolve().parent
ZERO_DECIMAL = frozenset({"JPY", "KRW", "VND", "CLP", "ISK", "UGX", "XAF", "XOF", "PYG"})


@dataclass(frozen=True)
class ConsoleUser:
    principal: Principal
    csrf: str

    def may(self, role: str) -> bool:
        return self.principal.may(Role(role))


def age(moment: datetime | None, now: datetime | None = None) -> str:
    """``"4m"``, ``"2h 5m"``, ``"3d 1h"``: how long ago, for people."""
    if moment is None:
        return "—"
    seconds = max(0, int(((now or datetime.now(UTC)) - moment).total_seconds()))
    if seconds < 60:
        return f"{seconds}s"
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if hours < 1:
        return f"{minutes}m"
    if days < 1:
        return f"{hours}h {minutes % 60}m"
    return f"{days}d {hours % 24}h"


def duration(seconds: float | int | Decimal | None) -> str:
    """A latency or a wait for people, in the unit that keeps it short: ``"850 ms"``,
    ``"4.2 s"``, ``"12 min"``, ``"3.5 h"``, ``"2.1 d"`` (never ``"7384.23 s"``)."""
    if seconds is None:
        return "—"
    value = float(seconds)
    sign, value = ("−" if value < 0 else ""), abs(value)
    if value < 1:
        return f"{sign}{value * 1000:.0f} ms"
    for limit, unit, size in ((60, "s", 1), (3600, "min", 60), (86400, "h", 3600)):
        if value < limit:
            shown = value / size
            return f"{sign}{shown:.1f} {unit}" if shown < 10 else f"{sign}{shown:.0f} {unit}"
    days = value / 86400
    return f"{sign}{days:.1f} d" if days < 10 else f"{sign}{days:,.0f} d"


def money(amount: int | None, currency: str | None) -> str:
    """Minor units as the currency's major units: ``125000, 'usd'`` → ``1,250.00 USD``."""
    if amount is None:
        return "—"
    code = (currency or "").upper()
    places = 0 if code in ZERO_DECIMAL else 2
    value = Decimal(amount).scaleb(-places)
    return f"{value:,.{places}f} {code}".strip()


def stamp(moment: datetime | str | None) -> str:
    """A moment for people, in UTC to the second; an ISO 8601 text (a JSON route's) too."""
    if moment is None:
        return "—"
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def pretty(value: Any) -> str:
    if isinstance(value, str | bytes):
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        try:
            return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
        except ValueError:
            return text
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def parse_moment(text: str | None) -> datetime | None:
    """A filter form's time (``datetime-local`` or ISO 8601); 422 when it is none."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"not a time: {text!r}") from exc


def as_text(raw: bytes | None) -> str | None:
    """Stored bytes for people: UTF-8 text, else how many bytes they are."""
    if raw is None:
        return None
    try:
        return bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        return f"(binary, {len(raw)} bytes)"


def _environment(folders: Sequence[Path]) -> Environment:
    env = Environment(
        loader=FileSystemLoader([str(folder) for folder in folders]),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        age=age, duration=duration, money=money, stamp=stamp, pretty=pretty, urlquote=quote
    )
    return env


class Pages:
    """The environment and what every page shows (the navigation, the user)."""

    def __init__(
        self,
        folders: Sequence[Path],
        nav: Sequence[tuple[str, str]],
        services: Sequence[ServicePages] = (),
    ) -> None:
        self.env = _environment([HERE / "templates", *folders])
        self.nav = tuple(nav)
        self.services = tuple(services)

    def warm(self) -> None:
        """Compile every template once (about half a second in all), so that no visitor's
        first page pays for it; run in a background thread at mount."""
        for name in self.env.list_templates(extensions=["html"]):
            self.env.get_template(name)

    def render(
        self, request: Request, template: str, user: ConsoleUser | None, **context: Any
    ) -> HTMLResponse:
        part = request.query_params.get("part")
        name = template
        if part:
            if not part.isidentifier():
                raise HTTPException(status.HTTP_404_NOT_FOUND, "no such part")
            folder, _, _ = template.rpartition("/")
            name = f"{folder}/_{part}.html" if folder else f"_{part}.html"
        path = request.url.path
        service = next((s for s in self.services if path.startswith(s.href)), None)
        values = {
            "request": request,
            "service": service,
            "user": user,
            "nav": self.nav,
            "path": path,
            "now": datetime.now(UTC),
            **context,
        }
        html = self.env.get_template(name).render(values)
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})


def get_pages(request: Request) -> Pages:
    pages: Pages = request.app.state.console_pages
    return pages


async def console_user(request: Request) -> ConsoleUser:
    """The console user of the request's session cookie; :class:`LoginRequired` otherwise."""
    sessions: SessionAuth = request.app.state.console_sessions
    session_id = sessions.codec.session_id(request.cookies.get(SESSION_COOKIE))
    principal = await sessions.principal(session_id) if session_id else None
    if principal is None or session_id is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(target)
    return ConsoleUser(principal=principal, csrf=sessions.codec.csrf_token(session_id))


UserDep = Annotated[ConsoleUser, Depends(console_user)]
PagesDep = Annotated[Pages, Depends(get_pages)]
