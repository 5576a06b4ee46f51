"""The web console: server-rendered pages of every service, served by the API process.

``mount_console(app, settings)`` hangs the pages, the login and the static files on the app
and answers the :class:`~api.console.session.SessionAuth` that the principal middleware asks
for a console session (cookie + CSRF header). The console has no write path of its own:
every button and form calls the JSON API under ``/api/v1`` with the user's session, under
the same role table as a token (``api/routes/__init__.py``); pages read through the same
query functions as the JSON routes. A service's pages are one package under
``api/console/services/`` registered in its ``SERVICES`` (one line).
"""

from __future__ import annotations

import threading
from urllib.parse import quote

import sqlalchemy
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from api.console import dead_letters, home, lineage, login
from api.console.render import HERE, Pages
from api.console.services import SERVICES
from api.console.session import CookiePolicy, SessionAuth, SessionCodec, signing_key
from synapseops.errors import LoginRequired
from synapseops.settings import Settings

STATIC_PATH = "/console/static"


async def _login_required(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LoginRequired)
    if request.query_params.get("part"):
        # A live fragment of a page whose session ended: the page's script goes to login.
        return JSONResponse({"detail": "log in again", "login": "/login"}, status_code=401)
    return RedirectResponse(f"/login?next={quote(exc.next_path)}", status_code=303)


def mount_console(app: FastAPI, settings: Settings) -> SessionAuth:
    codec = SessionCodec(lambda: signing_key(settings), CookiePolicy.of(settings).max_age_s)

    def engine() -> sqlalchemy.Engine | None:
        return getattr(app.state, "engine", None)

    sessions = SessionAuth(codec, engine)
    nav = [("Home", "/"), *((s.title, s.href) for s in SERVICES), ("Dead letters", "/dead-letters")]
    app.state.console_sessions = sessions
    pages = Pages([service.templates for service in SERVICES], nav, SERVICES)
    threading.Thread(target=pages.warm, name="console-templates", daemon=True).start()
    app.state.console_pages = pages
    app.state.console_services = SERVICES
    app.add_exception_handler(LoginRequired, _login_required)
    for router in (login.router, home.router, dead_letters.router, lineage.router):
        app.include_router(router)
    for service in SERVICES:
        app.include_router(service.router)
    app.mount(STATIC_PATH, StaticFiles(directory=HERE / "static"), name="console-static")
    return sessions
