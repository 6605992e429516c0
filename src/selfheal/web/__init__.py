"""The dashboard: one hand-written page, its static files, served by the agent itself.

No build step and no third-party front-end code: ``templates/dashboard.html``
loads ``static/*.js`` (plain ES modules) and ``static/dashboard.css``. The page
talks only to the public API and its live feed (``/api/events/ws``); the API
key lives in the browser's sessionStorage and travels in a header or the
WebSocket's first message, never in a URL.
"""

from __future__ import annotations

from selfheal.web.pages import install

__all__ = ["install"]
