"""Not thread-safe: its client records each call, once answered, through the ctx it was last handed, so with
rows in flight together a row's call is recorded under whichever row's state came last. Declares no
`deterministic` (the kit then compares no outputs, only where each call is recorded). Correct one row at a
time; the concurrency scenario catches it once the engine runs rows in flight together."""

from __future__ import annotations

import json
from typing import Any

from elspeth.api import Capability, Context, Error, Register, Row, TransformResult
from elspeth.hookspecs import hookimpl

from .http_client import HttpStatusError, Request, send
from .http_transform import PROVIDER, HttpTransformConfig, SampleHttpTransform


class RecordingClient:
    """Sends a request, then records it through `self.ctx`, which the caller sets for each row."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.ctx: Context | None = None

    def fetch(self, request: Request) -> Any:
        try:
            status, data = send(request, self.timeout)
        except OSError as exc:
            self.record(request, error={"type": type(exc).__name__, "message": str(exc)})
            raise
        if status >= 400:
            self.record(request, response={"status": status, "text": data.decode("utf-8", "replace")}, error=status)
            raise HttpStatusError(status, data)
        document = json.loads(data)
        self.record(request, response={"status": status, "json": document})
        return document

    def record(self, request: Request, **outcome: Any) -> None:
        assert self.ctx is not None
        self.ctx.record_call(call_type="http", provider=PROVIDER, request=request, **outcome)


class SharedContextTransform(SampleHttpTransform):
    name = "sample_http_shared_ctx"
    capabilities = frozenset({Capability.EXTERNAL_CALLS})

    def __init__(self, config: HttpTransformConfig) -> None:
        super().__init__(config)
        self.client = RecordingClient(config.timeout)

    def process(self, row: Row, ctx: Context) -> TransformResult:
        self.client.ctx = ctx
        try:
            document = self.client.fetch(self.request_for(row))
        except HttpStatusError as exc:
            return Error(str(exc), retryable=exc.status == 429 or exc.status >= 500)
        except (OSError, ValueError) as exc:
            return Error(f"{type(exc).__name__}: {exc}", retryable=True)
        return self.output(row, document)


@hookimpl
def register_transforms(register: Register) -> None:
    register(SharedContextTransform)
