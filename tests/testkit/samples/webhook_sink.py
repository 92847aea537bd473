"""A correct sink with external calls: the resumable append sink, which also POSTs a notice of every batch
it writes to `url`/batches, recording each attempt through the ctx of that write() and trying twice."""

from __future__ import annotations

import os
from typing import Any

from attrs import frozen

from elspeth.api import Capability, Context, Register, Row
from elspeth.hookspecs import hookimpl

from .append_sink import SampleAppendSink
from .http_client import HttpStatusError, Request, recorded_call

PROVIDER = "sample_webhook"
ATTEMPTS = 2


@frozen
class WebhookSinkConfig:
    path: str
    url: str
    timeout: float = 1.0


class SampleWebhookSink(SampleAppendSink):
    name = "sample_webhook"
    config_class = WebhookSinkConfig
    capabilities = SampleAppendSink.capabilities | {Capability.EXTERNAL_CALLS}
    config: WebhookSinkConfig  # type: ignore[assignment]

    def request_for(self, rows: list[Row]) -> Request:
        notice = {"rows": len(rows), "first_id": rows[0].get("id"), "file": os.path.basename(self.path)}
        return {"method": "POST", "url": f"{self.config.url.rstrip('/')}/batches", "json": notice}

    def write(self, rows: list[Row], ctx: Context) -> None:
        super().write(rows, ctx)
        self.notify(rows, ctx)

    def notify(self, rows: list[Row], ctx: Context) -> Any:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return recorded_call(ctx, PROVIDER, self.request_for(rows), self.config.timeout)
            except (HttpStatusError, OSError, ValueError):
                if attempt == ATTEMPTS:
                    raise
        return None


@hookimpl
def register_sinks(register: Register) -> None:
    register(SampleWebhookSink)
