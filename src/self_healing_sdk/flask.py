"""Flask: a blueprint with ``/health`` and ``/webhook``.

::

    from self_healing_sdk.flask import blueprint
    app.register_blueprint(blueprint(agent))

By default the blueprint also counts every request of the app (5xx as
failures, with their latency) and reports the app's unhandled exceptions to
the agent.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, Flask, Response, g, got_request_exception, request
from flask.blueprints import BlueprintSetupState

from self_healing_sdk._routes import (
    HEALTH_PATH,
    MAX_WEBHOOK_BYTES,
    WEBHOOK_PATH,
    AnyAgent,
    health_answer,
    too_large,
)


def blueprint(
    agent: AnyAgent,
    *,
    name: str = "selfheal",
    health_path: str = HEALTH_PATH,
    webhook_path: str = WEBHOOK_PATH,
    count_requests: bool = True,
    report_exceptions: bool = True,
) -> Blueprint:
    """A ``Blueprint`` serving the SDK's two routes for ``agent``."""
    bp = Blueprint(name, __name__)
    own_paths = {health_path, webhook_path}

    @bp.route(health_path, methods=["GET", "HEAD"])
    def selfheal_health() -> Response:
        status, body = health_answer(agent)
        return Response(body, status=status, content_type="application/json")

    @bp.route(webhook_path, methods=["POST"])
    def selfheal_webhook() -> Response:
        if (request.content_length or 0) > MAX_WEBHOOK_BYTES:
            return Response(too_large(), status=413, content_type="application/json")
        body = request.get_data(cache=False)
        answer = agent.handle_webhook(dict(request.headers), body)
        content, headers = answer.encoded()
        return Response(content, status=answer.status, headers=headers)

    if count_requests:

        @bp.before_app_request
        def selfheal_started() -> None:
            g.selfheal_started = time.perf_counter()

        @bp.after_app_request
        def selfheal_count(response: Response) -> Response:
            started = g.get("selfheal_started")
            if request.path not in own_paths and started is not None:
                agent.record_request(
                    ok=response.status_code < 500,
                    latency_ms=(time.perf_counter() - started) * 1000.0,
                )
            return response

    if report_exceptions:

        def selfheal_report(_sender: Flask, exception: BaseException, **_extra: Any) -> None:
            agent.report_error(exception, context={"path": request.path})

        def connect(state: BlueprintSetupState) -> None:
            got_request_exception.connect(selfheal_report, state.app, weak=False)

        bp.record_once(connect)
    return bp


__all__ = ["blueprint"]
