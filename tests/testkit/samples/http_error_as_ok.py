"""Bug class 7: an HTTP error response is recorded as an ok call (the error is in the response, not in the
call's error), then answered with a retryable Error."""

from __future__ import annotations

import json

from elspeth.api import Context, Error, Register, Row, TransformResult
from elspeth.hookspecs import hookimpl

from .http_client import send
from .http_transform import PROVIDER, SampleHttpTransform


class ErrorAsOkTransform(SampleHttpTransform):
    name = "sample_http_error_as_ok"

    def process(self, row: Row, ctx: Context) -> TransformResult:
        try:
            with ctx.call("http", PROVIDER, self.request_for(row)) as call:
                status, data = send(call.request, self.config.timeout)
                call.response = {"status": status, "text": data.decode("utf-8", "replace")}
        except OSError as exc:
            return Error(f"{type(exc).__name__}: {exc}", retryable=True)
        if status >= 400:
            return Error(f"HTTP {status}", retryable=True)
        try:
            return self.output(row, json.loads(data))
        except ValueError as exc:
            return Error(f"not JSON: {exc}", retryable=True)


@hookimpl
def register_transforms(register: Register) -> None:
    register(ErrorAsOkTransform)
