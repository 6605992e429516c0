"""The tcp, exec and tls checks against real loopback servers and real processes."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import os
import socket
import ssl
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from selfheal.checks.exec import ExecCheck, ExecOptions
from selfheal.checks.tcp import TcpCheck, TcpOptions
from selfheal.checks.tls import TlsCheck, TlsOptions
from selfheal.plugin_api import CheckResult, CheckTarget, PluginContext, ServiceInfo

SERVICE = ServiceInfo(service_id="svc", tenant_id="default", name="svc", health_url="tcp:x")


@pytest.fixture
async def context() -> AsyncIterator[PluginContext]:
    async def notify(notice: Any) -> list[str]:
        return []

    async with httpx.AsyncClient() as client:
        yield PluginContext(http=client, notify=notify)


def target(options: Any, timeout: float = 2.0) -> CheckTarget:
    return CheckTarget(service=SERVICE, options=options, timeout=timeout)


# -- tcp -------------------------------------------------------------------------------


async def test_tcp_connects_and_times_the_connection(context: PluginContext) -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        options = TcpOptions.model_validate({"address": f"127.0.0.1:{port}"})
        result = await TcpCheck(context).check(target(options))
    finally:
        server.close()
    assert result.ok
    assert 0 < result.response_ms < 2000


async def test_tcp_refused_is_connect_refused(context: PluginContext) -> None:
    with socket.socket() as sock:  # a port bound but not listening refuses
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        options = TcpOptions.model_validate({"address": f"127.0.0.1:{port}"})
        result = await TcpCheck(context).check(target(options))
    assert not result.ok
    assert result.failure == "connect_refused"


async def test_tcp_no_answer_is_connect_timeout(context: PluginContext) -> None:
    # a listener whose accept queue is full drops further SYNs: connect hangs
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(3):
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", port))
            fillers.append(filler)
        options = TcpOptions.model_validate({"address": f"127.0.0.1:{port}"})
        result = await TcpCheck(context).check(target(options, timeout=0.5))
    finally:
        for filler in fillers:
            filler.close()
        listener.close()
    assert not result.ok
    assert result.failure == "connect_timeout"


def test_tcp_address_is_validated() -> None:
    with pytest.raises(ValueError, match="host:port"):
        TcpOptions.model_validate({"address": "127.0.0.1"})
    assert TcpOptions.model_validate({"address": "[::1]:80"}).address == ("::1", 80)


# -- exec ------------------------------------------------------------------------------


def py(code: str) -> list[str]:
    return [sys.executable, "-c", code]


async def test_exec_exit_zero_is_healthy_and_json_carries_metrics(
    context: PluginContext,
) -> None:
    options = ExecOptions(command=py('print(\'{"status": "ok", "cpu": 97.5, "queue": 3}\')'))
    result = await ExecCheck(context).check(target(options))
    assert result.ok
    assert result.health is not None
    assert result.health["cpu"] == 97.5


async def test_exec_non_zero_is_exec_failed_with_its_output(context: PluginContext) -> None:
    options = ExecOptions(command="echo 'replica lag 40s' >&2; exit 3")
    result = await ExecCheck(context).check(target(options))
    assert not result.ok
    assert result.failure == "exec_failed"
    assert result.error == "command exited 3: replica lag 40s"


async def test_exec_timeout_kills_the_process_group(context: PluginContext, tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    options = ExecOptions(command=f"sleep 30 & echo $! > {pid_file}; wait")
    result = await ExecCheck(context).check(target(options, timeout=0.5))
    assert not result.ok
    assert result.failure == "exec_timeout"
    child = int(pid_file.read_text())
    for _ in range(50):
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail("the command's child outlived the timeout")


async def test_exec_runs_in_a_clean_environment(
    context: PluginContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENT_ONLY_SECRET", "do-not-leak")
    options = ExecOptions(
        command=py("import os, json; print(json.dumps({'env': sorted(os.environ)}))"),
        env={"CHECK_MODE": "fast"},
    )
    result = await ExecCheck(context).check(target(options))
    assert result.health is not None
    assert "AGENT_ONLY_SECRET" not in result.health["env"]
    assert "CHECK_MODE" in result.health["env"]


async def test_exec_output_is_bounded(context: PluginContext) -> None:
    options = ExecOptions(command=py("print('x' * 5_000_000)"), max_output=1000)
    result = await ExecCheck(context).check(target(options, timeout=10))
    assert result.ok
    assert result.health is None


# -- tls -------------------------------------------------------------------------------


def make_certificate(tmp_path: Path, days: float) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 that expires in ``days``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def tls_server(cert: Path, key: Path) -> asyncio.Server:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    return await asyncio.start_server(serve, "127.0.0.1", 0, ssl=context)


async def check_tls(context: PluginContext, tmp_path: Path, **options: Any) -> CheckResult:
    cert, key = make_certificate(tmp_path, 3)
    server = await tls_server(cert, key)
    port = server.sockets[0].getsockname()[1]
    try:
        parsed = TlsOptions.model_validate(
            {"address": f"127.0.0.1:{port}", "ca_file": str(cert)} | options
        )
        return await TlsCheck(context).check(target(parsed))
    finally:
        server.close()


async def test_tls_certificate_expiring_in_3_days_is_cert_expiring(
    context: PluginContext, tmp_path: Path
) -> None:
    result = await check_tls(context, tmp_path)  # warn_days defaults to 14
    assert not result.ok
    assert result.failure == "cert_expiring"
    assert result.health is not None
    assert 2.9 < result.health["cert_days_left"] < 3.01
    assert "expires in 3.0 days" in (result.error or "")


async def test_tls_certificate_with_days_to_spare_is_healthy(
    context: PluginContext, tmp_path: Path
) -> None:
    result = await check_tls(context, tmp_path, warn_days=2)
    assert result.ok
    assert result.health is not None
    assert result.health["cert_days_left"] > 2.9


async def test_tls_untrusted_certificate_is_tls_error(
    context: PluginContext, tmp_path: Path
) -> None:
    cert, key = make_certificate(tmp_path, 3)
    server = await tls_server(cert, key)
    port = server.sockets[0].getsockname()[1]
    try:
        options = TlsOptions.model_validate({"address": f"127.0.0.1:{port}"})
        result = await TlsCheck(context).check(target(options))
    finally:
        server.close()
    assert not result.ok
    assert result.failure == "tls_error"
    assert "certificate verify failed" in (result.error or "") or "self" in (result.error or "")


# -- the router: HTTP stays a direct call, plugin results become samples -----------------


async def test_router_maps_plugin_results_onto_samples(make_settings: Any) -> None:
    from selfheal.checks.router import ProbeRouter
    from selfheal.checks.sample import Failure, Sample
    from selfheal.plugins import load_plugins
    from selfheal.services import build_spec
    from selfheal.types import ServiceKey

    class Odd:
        api_version = 1
        options_model = None

        def __init__(self, context: Any) -> None:
            pass

        async def check(self, target: CheckTarget) -> CheckResult:
            return CheckResult(False, 1.0, failure="moon_phase", error="odd", health={"cpu": 99})

    http_calls: list[str] = []

    async def http(spec: Any) -> Sample:
        http_calls.append(spec.service_id)
        return Sample(spec.key, 0.0, True, 1.0)

    plugins = load_plugins()
    plugins.checks["odd"] = Odd  # type: ignore[assignment]
    async with httpx.AsyncClient() as client:
        router = ProbeRouter(http, plugins, PluginContext(http=client, notify=None))  # type: ignore[arg-type]
        settings = make_settings("sqlite+aiosqlite://")
        plain = build_spec(settings, key=ServiceKey("t", "web"), name=None, health_url="http://x")
        odd = build_spec(
            settings,
            key=ServiceKey("t", "odd"),
            name=None,
            health_url="odd:",
            check={"type": "odd"},
        )
        assert (await router(plain)).ok
        sample = await router(odd)
    assert http_calls == ["web"]
    assert not sample.ok
    assert sample.failure is Failure.UNREACHABLE
    assert sample.error == "odd (unknown failure kind 'moon_phase')"
    assert sample.cpu == 99
