"""One probe result. Allocated once per probe, so it is a slotted dataclass."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from selfheal.types import ServiceKey


class Failure(StrEnum):
    """Why a probe did not get a 2xx answer in time."""

    UNREACHABLE = "unreachable"  # refused, reset, DNS, TLS
    TIMEOUT = "timeout"
    HTTP_ERROR = "http_error"  # answered, but not 2xx
    # from the plugin checks (tcp, exec, tls); each is an incident type of its own
    CONNECT_REFUSED = "connect_refused"
    CONNECT_TIMEOUT = "connect_timeout"
    EXEC_FAILED = "exec_failed"
    EXEC_TIMEOUT = "exec_timeout"
    CERT_EXPIRING = "cert_expiring"
    TLS_ERROR = "tls_error"


@dataclass(slots=True)
class Sample:
    """What one probe saw. Figures the service did not report are None."""

    key: ServiceKey
    at: float  # unix seconds when the probe started
    ok: bool  # a 2xx within the timeout
    response_ms: float
    status_code: int | None = None
    failure: Failure | None = None
    error: str | None = None
    reported_status: str | None = None  # "ok" | "degraded" | "down" from the health JSON
    cpu: float | None = None
    memory: float | None = None
    error_rate: float | None = None
    latency_ms: float | None = None
    details: dict[str, Any] | None = None  # other fields of the health JSON, kept as metadata

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly view for events and the API."""
        return {
            "service_id": self.key.service_id,
            "at": self.at,
            "ok": self.ok,
            "response_ms": round(self.response_ms, 2),
            "status_code": self.status_code,
            "failure": self.failure,
            "error": self.error,
            "reported_status": self.reported_status,
            "cpu": self.cpu,
            "memory": self.memory,
            "error_rate": self.error_rate,
            "latency_ms": self.latency_ms,
        }
