"""``GET /docs``: Swagger UI served from the installed package, never from a CDN.

FastAPI's default page loads its scripts from a public CDN, so it stays blank on
a machine without internet (the usual place for an agent). The files come from
the ``swagger-ui-py`` distribution, which ships Swagger UI 5's dist files with
their Apache-2.0 LICENSE; they are served under ``/docs/static``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

DOCS_STATIC = "/docs/static"


def swagger_ui_files() -> Path:
    """The folder of Swagger UI's dist files inside the installed distribution.

    Found without importing the package, whose import pulls in its framework glue.
    """
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("swagger-ui-py is not installed; pip install selfheal again")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


def install(app: FastAPI, *, openapi_url: str = "/openapi.json") -> None:
    """Add ``/docs`` and its static files to the app (create it with ``docs_url=None``)."""
    app.mount(DOCS_STATIC, StaticFiles(directory=swagger_ui_files()), name="docs-static")

    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} - API docs",
            swagger_js_url=f"{DOCS_STATIC}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_STATIC}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_STATIC}/favicon-32x32.png",
            # Swagger UI's default asks a public validator about the document
            swagger_ui_parameters={"validatorUrl": None},
        )

    app.add_api_route("/docs", docs, include_in_schema=False, response_class=HTMLResponse)
