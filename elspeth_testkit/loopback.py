"""What the kit's servers on 127.0.0.1 (the fault proxy, the Azure OpenAI emulator, test services) have in
common: a context manager around start() and stop(), the URL of the port they were given, the HTTP server
they run on, and the one reader of a request's body (Content-Length or chunked)."""

from __future__ import annotations

import socketserver
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

MAX_LINE = 65536
"""The longest request, header or chunk-size line a server reads."""


class LoopbackServer:
    _server: socketserver.TCPServer | None
    _address: tuple[str, int]

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(f"the {type(self).__name__} is not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The base URL to give a client."""
        return f"http://{self._address[0]}:{self.port}"


class LoopbackHTTPServer(ThreadingHTTPServer):
    """A threaded HTTP server for 127.0.0.1: its threads die with the test, and its bind does not look up the
    host's FQDN (HTTPServer's does, which can take seconds)."""

    daemon_threads = True
    # socketserver's backlog of 5 leaves most of 64 simultaneous connects to SYN retries (a second or more).
    request_queue_size = 512

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]  # type: ignore[assignment]


class ClientGone(Exception):
    """The client closed the connection before its request was complete."""


class BadRequest(Exception):
    """A request body that cannot be read as HTTP/1.1 frames it (the message says why)."""


def read_body(handler: BaseHTTPRequestHandler) -> bytes:
    """The request's body as sent: by Content-Length, or chunked uploads de-chunked (trailers dropped).
    Raises BadRequest for a framing HTTP/1.1 does not allow, ClientGone when the client left mid-body."""
    encodings = [e.strip().lower() for v in handler.headers.get_all("Transfer-Encoding", []) for e in v.split(",")]
    if encodings:
        if encodings[-1] != "chunked":
            raise BadRequest(f"unsupported Transfer-Encoding {', '.join(encodings)}")
        return b"".join(_chunks(handler))
    length = handler.headers.get("Content-Length")
    if length is None:
        return b""
    try:
        size = int(length)
    except ValueError:
        raise BadRequest(f"bad Content-Length {length!r}") from None
    if size < 0:
        raise BadRequest(f"bad Content-Length {length!r}")
    data = handler.rfile.read(size)
    if len(data) < size:
        raise ClientGone
    return data


def _chunks(handler: BaseHTTPRequestHandler) -> Iterator[bytes]:
    rfile = handler.rfile
    while True:
        line = rfile.readline(MAX_LINE + 1)
        if not line:
            raise ClientGone
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise BadRequest(f"bad chunk size line {line[:40]!r}") from None
        if size == 0:
            break
        data = rfile.read(size)
        if len(data) < size:
            raise ClientGone
        yield data
        rfile.readline(MAX_LINE + 1)
    while True:  # trailer fields, up to the empty line
        line = rfile.readline(MAX_LINE + 1)
        if line in (b"\r\n", b"\n", b""):
            return
