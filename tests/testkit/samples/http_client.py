"""The HTTP client the sample plugins share: one request over http.client (no SDK, no retries of its own,
no proxy settings from the environment), and the one correct way to record it."""

from __future__ import annotations

import http.client
import json
from typing import Any
from urllib.parse import urlsplit

from elspeth.api import Context

Request = dict[str, Any]


class HttpStatusError(Exception):
    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"HTTP {status}: {body[:200]!r}")
        self.status = status


def send(request: Request, timeout: float) -> tuple[int, bytes]:
    """Send `request` ({"method", "url", "headers", and "json" for a body}); the status and body back."""
    url = urlsplit(request["url"])
    body = json.dumps(request["json"]).encode() if "json" in request else None
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=timeout)
    try:
        conn.request(request["method"], url.path or "/", body=body, headers=request.get("headers", {}))
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def recorded_call(ctx: Context, provider: str, request: Request, timeout: float) -> Any:
    """Send `request` inside `ctx.call`, so the attempt is recorded whatever happens: a success with its
    status and JSON body, an HTTP error or a body that is not JSON as an ERROR call that keeps what came
    back, a timeout or reset as an ERROR call. Returns the JSON body; raises HttpStatusError, OSError or
    ValueError."""
    with ctx.call("http", provider, request) as call:
        status, data = send(request, timeout)
        call.response = {"status": status, "text": data.decode("utf-8", "replace")}
        document = json.loads(data)
        call.response = {"status": status, "json": document}
        if status >= 400:
            raise HttpStatusError(status, data)
    return document
