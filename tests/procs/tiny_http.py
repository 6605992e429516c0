"""A tiny HTTP service for supervisor tests and benchmarks: ``tiny_http.py PORT [--ignore-term]``.

Standard library only, so it starts fast under any interpreter. It answers
200 on every GET (with its pid), says on stdout that it listens, and on stderr when it gets
SIGTERM (with the time, so a test can tell in which order services stopped).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from types import FrameType


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"status": "ok", "pid": %d}' % os.getpid()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def on_term(_signum: int, _frame: FrameType | None) -> None:
    print(f"SIGTERM at {time.time():.6f}", file=sys.stderr, flush=True)
    if "--ignore-term" not in sys.argv:
        sys.exit(0)


def main() -> None:
    signal.signal(signal.SIGTERM, on_term)
    server = HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    print(f"listening on {sys.argv[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
