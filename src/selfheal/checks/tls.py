"""The ``tls`` check: how many days are left on a server's certificate?

``check: {type: tls, address: example.org:443, warn_days: 14}``. Fewer days
left than ``warn_days`` is a ``cert_expiring`` incident: its catalog is empty,
so nothing is run and the escalation tells people (renewing is their job). A
handshake that fails (an expired or untrusted certificate) is ``tls_error``.
The days left are reported as ``cert_days_left`` in the sample's details.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from datetime import UTC, datetime
from typing import ClassVar

from cryptography import x509
from pydantic import BaseModel, ConfigDict, Field

from selfheal.checks.address import Address
from selfheal.plugin_api import API_VERSION, CheckResult, CheckTarget, PluginContext


class TlsOptions(BaseModel):
    """Options of the ``tls`` check."""

    model_config = ConfigDict(extra="forbid")

    address: Address
    server_name: str | None = None  # SNI and the name verified; default: the address's host
    warn_days: float = Field(default=14.0, gt=0)
    ca_file: str | None = None  # trust these CAs instead of the system's
    verify: bool = True  # False: read the dates of any certificate, trusted or not


class TlsCheck:
    """One TLS handshake per probe; the peer certificate's ``notAfter`` decides."""

    api_version: ClassVar[int] = API_VERSION
    options_model: ClassVar[type[BaseModel]] = TlsOptions

    def __init__(self, context: PluginContext) -> None:
        del context
        self._contexts: dict[tuple[str | None, bool], ssl.SSLContext] = {}

    def _ssl(self, options: TlsOptions) -> ssl.SSLContext:
        key = (options.ca_file, options.verify)
        context = self._contexts.get(key)
        if context is None:
            context = ssl.create_default_context(cafile=options.ca_file)
            if not options.verify:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            self._contexts[key] = context
        return context

    async def check(self, target: CheckTarget) -> CheckResult:
        """Handshake, read the certificate's expiry, compare with ``warn_days``."""
        options: TlsOptions = target.options
        host, port = options.address
        started = time.perf_counter()
        try:
            async with asyncio.timeout(target.timeout):
                reader, writer = await asyncio.open_connection(
                    host, port, ssl=self._ssl(options), server_hostname=options.server_name or host
                )
        except TimeoutError:
            return CheckResult(
                False, _ms(started), failure="connect_timeout", error="TLS handshake timed out"
            )
        except ssl.SSLError as exc:
            reason = getattr(exc, "verify_message", None) or exc.reason or type(exc).__name__
            return CheckResult(False, _ms(started), failure="tls_error", error=f"TLS: {reason}")
        except ConnectionRefusedError:
            return CheckResult(
                False, _ms(started), failure="connect_refused", error=f"{host}:{port} refused"
            )
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            return CheckResult(False, _ms(started), failure="unreachable", error=reason)
        elapsed = _ms(started)
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()
        del reader
        expires = x509.load_der_x509_certificate(der).not_valid_after_utc
        days = (expires - datetime.now(UTC)).total_seconds() / 86400.0
        health = {"cert_days_left": round(days, 2), "cert_expires_at": expires.isoformat()}
        if days < options.warn_days:
            error = (
                f"certificate expires in {days:.1f} days ({expires:%Y-%m-%d %H:%M} UTC), "
                f"less than warn_days {options.warn_days:g}"
            )
            return CheckResult(False, elapsed, failure="cert_expiring", error=error, health=health)
        return CheckResult(True, elapsed, health=health)


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0
