"""The one exception tree of selfheal.

::

    SelfhealError
    ├── ConfigError                 settings or config file are wrong (start-up refuses)
    │   └── PluginError             a plugin does not import, is of another API version, or twice
    ├── StorageError                the database failed or is unreachable
    ├── ApiError                    maps onto an HTTP status and the {"error": ...} body
    │   ├── BadRequestError         400
    │   ├── AuthenticationError     401
    │   ├── ForbiddenError          403 (the key's scope is too small)
    │   ├── NotFoundError           404
    │   ├── ConflictError           409
    │   ├── PayloadTooLargeError    413
    │   ├── ValidationFailedError   422
    │   └── TooManyRequestsError    429 (with Retry-After)
    ├── SignatureError              a signed webhook did not verify
    └── ActionError                 an executor could not carry an action out
        └── ActionTimeoutError

A class docstring is the default message, so each error documents itself.
"""

from __future__ import annotations


class SelfhealError(Exception):
    """Something went wrong in selfheal."""

    def __init__(self, message: str | None = None) -> None:
        self.message = message or (self.__doc__ or "").strip()
        super().__init__(self.message)


class ConfigError(SelfhealError):
    """The configuration is invalid."""


class PluginError(ConfigError):
    """A plugin could not be loaded."""


class StorageError(SelfhealError):
    """The database could not be reached or refused the operation."""


class ApiError(SelfhealError):
    """The request could not be served."""

    status_code = 500
    code = "internal_error"


class BadRequestError(ApiError):
    """The request is malformed."""

    status_code = 400
    code = "bad_request"


class AuthenticationError(ApiError):
    """A valid API key is required in the API key header."""

    status_code = 401
    code = "unauthorized"


class ForbiddenError(ApiError):
    """The key is valid but its scope does not allow this."""

    status_code = 403
    code = "forbidden"


class NotFoundError(ApiError):
    """No such resource for this tenant."""

    status_code = 404
    code = "not_found"


class ConflictError(ApiError):
    """The resource is not in a state that allows this."""

    status_code = 409
    code = "conflict"


class PayloadTooLargeError(ApiError):
    """The request body is too large."""

    status_code = 413
    code = "payload_too_large"


class ValidationFailedError(ApiError):
    """The request body does not match the schema."""

    status_code = 422
    code = "validation_error"


class TooManyRequestsError(ApiError):
    """Too many failed attempts from this client; retry later."""

    status_code = 429
    code = "too_many_requests"

    def __init__(self, message: str | None = None, *, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class SignatureError(SelfhealError):
    """The webhook signature did not verify."""


class ActionError(SelfhealError):
    """The action could not be carried out."""


class ActionTimeoutError(ActionError):
    """The action did not finish before its timeout."""
