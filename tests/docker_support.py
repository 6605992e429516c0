"""Real Docker for tests: a busybox image built FROM scratch, containers on the host network.

No registry is reachable, so the image holds only Debian's static busybox and
a ``/www/health`` file for its httpd. Tests that need Docker fail when it is
missing (``.ci/run`` starts it with ``scripts/ensure-docker``).
"""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from selfheal.contrib.docker.client import socket_path

IMAGE = "selfheal-test-busybox:1"
BUSYBOX = Path("/bin/busybox")


def docker_answers() -> bool:
    """True when dockerd accepts connections on its socket."""
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(2)
            sock.connect(socket_path())
        return True
    except OSError:
        return False


def require_docker() -> None:
    """Fail (never skip, as the browser tests do for chromium) without Docker or busybox."""
    if shutil.which("docker") is None or not docker_answers():
        pytest.fail("the Docker tests need dockerd answering (scripts/ensure-docker starts it)")
    if not BUSYBOX.exists():
        pytest.fail("the Docker tests need busybox-static (scripts/ensure-docker installs it)")


def docker(*args: str) -> str:
    """Run the docker CLI; its stdout."""
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout.strip()


def build_image(workdir: Path) -> str:
    """The busybox test image (built once per machine; later builds hit the cache)."""
    context = workdir / "image"
    (context / "www").mkdir(parents=True)
    shutil.copy(BUSYBOX, context / "busybox")
    (context / "www" / "health").write_text('{"status": "ok"}\n')
    (context / "Dockerfile").write_text(
        'FROM scratch\nCOPY busybox /bin/busybox\nCOPY www /www\nENTRYPOINT ["/bin/busybox"]\n'
    )
    docker("build", "-q", "-t", IMAGE, str(context))
    return IMAGE


def run_httpd(port: int) -> str:
    """A busybox httpd container on 127.0.0.1:port (host network); returns its name."""
    name = f"selfheal-test-{secrets.token_hex(4)}"
    docker(
        "run", "-d", "--name", name, "--network", "host", IMAGE,
        "httpd", "-f", "-p", f"127.0.0.1:{port}", "-h", "/www",
    )  # fmt: skip
    return name
