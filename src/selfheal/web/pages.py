"""``GET /dashboard`` and ``/dashboard/static/*``: the page needs no key, its data does."""

from __future__ import annotations

import hashlib
import html
from functools import cache
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from selfheal import __version__

HERE = Path(__file__).parent
STATIC = HERE / "static"
TEMPLATE = HERE / "templates" / "dashboard.html"

# the page runs only its own files; data comes from this origin (HTTP and WebSocket)
CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)


@cache
def asset_version() -> str:
    """A short hash of the static files, so a new release is never served from cache."""
    digest = hashlib.sha256()
    for path in sorted(STATIC.rglob("*")):
        if path.is_file():
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def render_page(api_key_header: str) -> str:
    """The dashboard's HTML with the few values it needs filled in (escaped)."""
    values = {
        "api_key_header": api_key_header,
        "version": __version__,
        "assets": asset_version(),
    }
    page = TEMPLATE.read_text(encoding="utf-8")
    for name, value in values.items():
        page = page.replace("{{" + name + "}}", html.escape(value, quote=True))
    return page


@router.get("/dashboard")
async def dashboard(request: Request) -> HTMLResponse:
    """The single-page dashboard (sign-in happens in the page)."""
    header = request.app.state.agent.settings.API_KEY_HEADER
    return HTMLResponse(render_page(header), headers=SECURITY_HEADERS)


@router.get("/dashboard/")
async def dashboard_slash() -> RedirectResponse:
    """``/dashboard/`` is ``/dashboard``."""
    return RedirectResponse("/dashboard", status_code=308)


class _StaticFiles(StaticFiles):
    """Static files that browsers revalidate (ETag) instead of guessing freshness."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(SECURITY_HEADERS)
        return response


def install(app: FastAPI) -> None:
    """Serve the dashboard page and its static files on ``app``."""
    app.include_router(router)
    app.mount("/dashboard/static", _StaticFiles(directory=STATIC), name="dashboard-static")
