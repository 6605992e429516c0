"""``host:port`` addresses for the socket-level checks (``[::1]:443`` for IPv6)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator


def parse_address(value: object) -> tuple[str, int]:
    """``"127.0.0.1:5432"`` or ``"[::1]:5432"`` as ``(host, port)``."""
    if not isinstance(value, str) or ":" not in value:
        raise ValueError(f"{value!r} is not an address; write host:port, e.g. 127.0.0.1:5432")
    host, _, port_text = value.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"{value!r} is not an address; write host:port, e.g. 127.0.0.1:5432")
    return host, int(port_text)


Address = Annotated[tuple[str, int], BeforeValidator(parse_address)]
