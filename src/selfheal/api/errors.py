"""The one place that turns exceptions into ``{"error": {"code", "message"}}``."""

from __future__ import annotations

import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from selfheal.api.schemas import ErrorPublic
from selfheal.errors import ApiError, StorageError, TooManyRequestsError
from selfheal.logging import get_logger

log = get_logger(__name__)

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_requests",
}


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` of a route for the 4xx answers it gives besides 401 and 422
    (those two, 400 and 413 for bodies, are added to every route they apply to)."""
    return {
        status: {"model": ErrorPublic, "description": _HTTP_CODES[status].replace("_", " ")}
        for status in statuses
    }


def http_error(status: int, message: str) -> ApiError:
    """An ``ApiError`` for an HTTP status and message from elsewhere (a library)."""
    error = ApiError(message)
    error.status_code = status
    error.code = _HTTP_CODES.get(status, "error")
    return error


def error_response(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    """The error body every failure of the API uses."""
    body: dict[str, Any] = {"code": code, "message": message} | extra
    return JSONResponse({"error": body}, status_code=status)


def _location(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


async def _validation(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        detail = next(e for e in errors if e.get("type") == "json_invalid")
        where = detail.get("ctx", {}).get("error", "")
        return error_response(
            400, "malformed_json", f"the request body is not valid JSON ({where})".strip()
        )
    problems = []
    for err in errors:
        message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        if err.get("type") == "extra_forbidden":
            message = "unknown field (see the OpenAPI document at /openapi.json)"
        problems.append(f"{_location(tuple(err.get('loc', ())))}: {message}")
    return error_response(
        422,
        "validation_error",
        "; ".join(problems),
        fields=[
            {"field": _location(tuple(e.get("loc", ()))), "problem": str(e.get("msg"))}
            for e in errors
        ],
    )


async def _api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    response = error_response(exc.status_code, exc.code, exc.message)
    if isinstance(exc, TooManyRequestsError):
        response.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    return response


async def _http(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "error")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    return error_response(exc.status_code, code, message)


async def _storage(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StorageError)
    log.warning("request_failed_database_unavailable", error=exc.message)
    response = error_response(
        503, "database_unavailable", "the database is unavailable; retry in a few seconds"
    )
    response.headers["Retry-After"] = "5"
    return response


async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    log.exception("request_failed", exc_info=exc)
    return error_response(500, "internal_error", "internal error; the agent logged the details")


def install_error_handlers(app: FastAPI) -> None:
    """Register every handler on the app."""
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(StorageError, _storage)
    app.add_exception_handler(Exception, _unexpected)
