"""A transform that POSTs (or GETs) each row to an HTTP echo server, for the wire check's tests: one mode
records its calls as a plugin should, the others have the bugs the wire check exists to catch.

Modes: `correct` (every attempt through `ctx.call`, failures as ERROR calls, then a retryable Error);
`skip_second` (row 2's request is sent but never recorded); `metadata` (records sizes, not bodies);
`escape` (records only successes: an HTTP error or a dropped connection escapes as an exception);
`error_as_ok` (records an HTTP error response as an ok call); `sdk_retry` (retries a 5xx once inside one
recorded call, as an SDK with retries on does, so the failed attempt has no row of its own); `record_later`
(records each row's call only when the next row comes, through that row's ctx, as work that outlives its row
does).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from attrs import field, frozen
from attrs.validators import in_

from elspeth.api import Capability, Context, Error, Row, Success, Transform, TransformResult
from elspeth.hookspecs import hookimpl

MODES = ("correct", "skip_second", "metadata", "escape", "error_as_ok", "sdk_retry", "record_later")


class HttpStatusError(Exception):
    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"HTTP {status}: {body[:200]!r}")
        self.status = status


@frozen
class WireEchoConfig:
    url: str
    mode: str = field(default="correct", validator=in_(MODES))
    method: str = field(default="POST", validator=in_(("POST", "GET")))
    timeout: float = 2.0


def _send(method: str, url: str, body: bytes | None, timeout: float) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


class WireEcho(Transform):
    name = "wire_echo"
    config_class = WireEchoConfig
    capabilities = frozenset({Capability.EXTERNAL_CALLS})
    config: WireEchoConfig
    unrecorded: dict[str, Any] | None = None

    def process(self, row: Row, ctx: Context) -> TransformResult:
        url = f"{self.config.url}/echo/{row['id']}"
        body: bytes | None = None
        request: dict[str, Any] = {"method": self.config.method, "url": url}
        if self.config.method == "POST":
            body = json.dumps(row).encode()
            request["json"] = row
        mode = self.config.mode
        if mode == "record_later":
            if self.unrecorded is not None:
                ctx.record_call(call_type="http", provider="echo", **self.unrecorded)
            status, data = _send(self.config.method, url, body, self.config.timeout)
            self.unrecorded = {"request": request, "response": {"status": status, "json": json.loads(data)}}
            return Success({**row, "status": status})
        if mode == "skip_second" and row["id"] == 2:
            status, data = _send(self.config.method, url, body, self.config.timeout)
            return Success({**row, "status": status})
        if mode == "metadata":
            status, data = _send(self.config.method, url, body, self.config.timeout)
            sizes = {"method": self.config.method, "url": url, "bytes": len(body or b"")}
            ctx.record_call(
                call_type="http", provider="echo", request=sizes, response={"status": status, "bytes": len(data)}
            )
            return Success({**row, "status": status})
        if mode == "escape":
            status, data = _send(self.config.method, url, body, self.config.timeout)
            if status >= 400:
                raise HttpStatusError(status, data)
            ctx.record_call(
                call_type="http", provider="echo", request=request, response={"status": status, "body": data}
            )
            return Success({**row, "status": status})
        if mode == "error_as_ok":
            with ctx.call("http", "echo", request) as call:
                status, data = _send(self.config.method, url, body, self.config.timeout)
                call.response = {"status": status, "body": data}
            if status >= 400:
                return Error(f"HTTP {status}", retryable=True)
            return Success({**row, "status": status})
        try:
            with ctx.call("http", "echo", request) as call:
                status, data = _send(self.config.method, url, body, self.config.timeout)
                if mode == "sdk_retry" and status >= 500:
                    status, data = _send(self.config.method, url, body, self.config.timeout)
                call.response = {"status": status, "body": data}
                if status >= 400:
                    raise HttpStatusError(status, data)
                call.response = {"status": status, "json": json.loads(data)}
        except HttpStatusError as exc:
            return Error(str(exc), retryable=exc.status == 429 or exc.status >= 500)
        except (OSError, ValueError) as exc:  # timeouts, resets, a body that is not JSON
            return Error(f"{type(exc).__name__}: {exc}", retryable=True)
        return Success({**row, "status": status})


@hookimpl
def register_transforms(register: Any) -> None:
    register(WireEcho)
