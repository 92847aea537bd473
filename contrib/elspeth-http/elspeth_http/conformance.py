"""How the conformance kit exercises `http_enrich`: a small JSON API on 127.0.0.1 and the plugin's setup.

    with serve_test_api() as api:
        setups = http_setups(api.url)   # {"transform:http_enrich": PluginSetup(...)}

This package's conftest.py and the repository's own conformance run both use it. The API (standard library
only, deterministic answers):

    GET  /lookup/<key>       {"key": <key>, "length": <len(key)>, "query": {<query parameters>}}
    POST /score/<group>      {"group": <group>, "fields": [<body keys, sorted>], "score": <sum of value lengths>}
    ANY  /status/<code>      that status with a JSON error body; ?retry_after=<value> adds a Retry-After header
    GET  /text               200 with a text/plain body
    GET  /redirect           302 to /lookup/moved
    anything else            404 with a JSON error body
"""

from __future__ import annotations

import contextlib
import json
import socketserver
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from attrs import define, field, frozen

from elspeth_testkit import PluginSetup, Service


@frozen
class Seen:
    """One request as the test API received it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


@define
class LocalApi:
    url: str
    requests: list[Seen] = field(factory=list)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def _handle(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        parts = urlsplit(self.path)
        path, query = unquote(parts.path), dict(parse_qsl(parts.query))
        self.server.api.requests.append(Seen(self.command, path, query, dict(self.headers.items()), body))
        head, _, rest = path.lstrip("/").partition("/")
        if head == "lookup" and self.command == "GET" and rest:
            self._json(200, {"key": rest, "length": len(rest), "query": query})
        elif head == "score" and self.command == "POST" and rest:
            try:
                document = json.loads(body)
            except ValueError:
                self._json(400, {"error": {"code": "400", "message": "the body is not JSON"}})
                return
            if not isinstance(document, dict):
                self._json(400, {"error": {"code": "400", "message": "the body is not a JSON object"}})
                return
            score = sum(len(str(value)) for value in document.values())
            self._json(200, {"group": rest, "fields": sorted(document), "score": score})
        elif head == "status" and rest.isdigit():
            code = int(rest)
            extra = {"Retry-After": query["retry_after"]} if "retry_after" in query else {}
            self._json(code, {"error": {"code": rest, "message": f"status {code} as asked"}}, extra)
        elif path == "/text":
            self._send(200, b"plain text, not JSON", "text/plain; charset=utf-8")
        elif path == "/redirect":
            self._json(302, {"moved": "/lookup/moved"}, {"Location": "/lookup/moved"})
        else:
            self._json(404, {"error": {"code": "404", "message": f"no route for {self.command} {path}"}})

    do_GET = do_POST = do_PUT = do_DELETE = _handle

    def _json(self, code: int, document: Any, headers: dict[str, str] | None = None) -> None:
        self._send(code, json.dumps(document).encode(), "application/json", headers)

    def _send(self, code: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, api: LocalApi) -> None:
        self.api = api
        super().__init__(("127.0.0.1", 0), _Handler)

    def server_bind(self) -> None:  # HTTPServer's looks up the host's FQDN, which can be slow
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]  # type: ignore[assignment]


@contextlib.contextmanager
def serve_test_api() -> Iterator[LocalApi]:
    """The test API on a free port of 127.0.0.1, for the duration of the block."""
    api = LocalApi(url="")
    server = _Server(api)
    api.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def http_setups(upstream_url: str) -> dict[str, PluginSetup]:
    """The conformance setups of this distribution's plugins, against the test API at `upstream_url`."""

    def enrich_options(workdir: Path, endpoint: str | None) -> dict[str, Any]:
        # The kit's fault proxy answers at `endpoint`; scenarios without it (recovery) go straight there.
        base = endpoint or upstream_url
        return {
            "url": base + "/score/{group}",
            "method": "POST",
            "body_fields": ["id", "name", "amount"],
            "output_field": "score",
            "headers": {"X-Client": "elspeth-conformance"},
            # Under the kit's 1.5 s timeout fault, so a held connection is this plugin's timeout to handle.
            "timeout_seconds": 1.0,
            "backoff_seconds": 0.0,
        }

    return {"transform:http_enrich": PluginSetup(options=enrich_options, service=Service(upstream=upstream_url))}
