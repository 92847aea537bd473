"""A real upstream for the fault proxy and the wire check: a small HTTP/1.1 server on 127.0.0.1 that echoes
each request as JSON. `/status/<code>` answers that code itself; `/text` answers plain text. The
`quiet_upstream` echoes the same but for the request headers, as a real API does not send your credentials
back."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import pytest

from elspeth_testkit.fault_proxy import FaultProxy
from elspeth_testkit.loopback import LoopbackHTTPServer

from .job_service import JobService


class EchoHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    echo_headers = True

    def _body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            raise AssertionError("the proxy forwards bodies with a Content-Length")
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _answer(self, code: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _echo(self) -> None:
        body = self._body()
        path, _, query = self.path.partition("?")
        if path.startswith("/status/"):
            code = int(path.rsplit("/", 1)[1])
            self._answer(code, json.dumps({"error": {"code": str(code), "message": "from upstream"}}).encode())
            return
        if path == "/text":
            self._answer(200, b"plain text, not JSON", "text/plain")
            return
        try:
            echoed = json.loads(body) if body else None
        except ValueError:
            echoed = body.decode("utf-8", "replace")
        headers = {"headers": dict(self.headers.items())} if self.echo_headers else {}
        document = {"method": self.command, "path": path, "query": query, **headers, "echo": echoed}
        self._answer(200, json.dumps(document).encode())

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _echo

    def log_message(self, format: str, *args: object) -> None:
        pass


class EchoServer(LoopbackHTTPServer):
    pass


class QuietEchoHandler(EchoHandler):
    echo_headers = False


@contextlib.contextmanager
def serving(handler: type[EchoHandler]) -> Iterator[str]:
    server = EchoServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def upstream() -> Iterator[str]:
    with serving(EchoHandler) as url:
        yield url


@pytest.fixture
def quiet_upstream() -> Iterator[str]:
    with serving(QuietEchoHandler) as url:
        yield url


@pytest.fixture
def proxy(upstream: str) -> Iterator[FaultProxy]:
    with FaultProxy(upstream, upstream_timeout=5) as p:
        yield p


@pytest.fixture
def job_service() -> Iterator[JobService]:
    with JobService() as service:
        yield service
