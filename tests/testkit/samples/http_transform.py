"""A correct transform with external calls: POSTs each row as JSON to `url`/rows/<id>, sending `api_key` in
an `api-key` header, and records every attempt (request with method, url, headers and JSON body; response
with status and JSON body; a failure as an ERROR call), then answers a failure with a retryable Error."""

from __future__ import annotations

from attrs import frozen

from elspeth.api import Capability, Context, Error, Register, Row, Success, Transform, TransformResult
from elspeth.hookspecs import hookimpl

from .http_client import HttpStatusError, Request, recorded_call

PROVIDER = "sample_echo"


@frozen
class HttpTransformConfig:
    url: str
    api_key: str | None = None
    timeout: float = 1.0


class SampleHttpTransform(Transform):
    name = "sample_http"
    config_class = HttpTransformConfig
    capabilities = frozenset({Capability.EXTERNAL_CALLS, Capability.DETERMINISTIC})
    config: HttpTransformConfig

    def request_for(self, row: Row) -> Request:
        headers = {"Content-Type": "application/json"}
        if self.config.api_key:
            headers["api-key"] = self.config.api_key
        return {
            "method": "POST",
            "url": f"{self.config.url.rstrip('/')}/rows/{row['id']}",
            "headers": headers,
            "json": row,
        }

    def process(self, row: Row, ctx: Context) -> TransformResult:
        try:
            document = recorded_call(ctx, PROVIDER, self.request_for(row), self.config.timeout)
        except HttpStatusError as exc:
            return Error(str(exc), retryable=exc.status == 429 or exc.status >= 500)
        except (OSError, ValueError) as exc:  # a timeout, a reset connection, a body that is not JSON
            return Error(f"{type(exc).__name__}: {exc}", retryable=True)
        return self.output(row, document)

    def output(self, row: Row, document: dict) -> TransformResult:
        return Success({**row, "echo_path": document["path"]})


@hookimpl
def register_transforms(register: Register) -> None:
    register(SampleHttpTransform)
