"""Bug class 5: sends each batch's notice in write() but records it in flush(), through the ctx that write()
was given, whose node_state is closed by then (the recorder refuses it: the run fails)."""

from __future__ import annotations

from typing import Any

from elspeth.api import Artifact, Context, Register, Row
from elspeth.hookspecs import hookimpl

from .http_client import send
from .webhook_sink import PROVIDER, SampleWebhookSink, WebhookSinkConfig


class LateRecordingWebhookSink(SampleWebhookSink):
    name = "sample_webhook_late"

    def __init__(self, config: WebhookSinkConfig) -> None:
        super().__init__(config)
        self.unrecorded: list[tuple[Context, dict[str, Any], dict[str, Any]]] = []

    def notify(self, rows: list[Row], ctx: Context) -> Any:
        request = self.request_for(rows)
        status, data = send(request, self.config.timeout)
        self.unrecorded.append((ctx, request, {"status": status, "text": data.decode("utf-8", "replace")}))

    def flush(self, ctx: Context) -> Artifact:
        for write_ctx, request, response in self.unrecorded:
            write_ctx.record_call(call_type="http", provider=PROVIDER, request=request, response=response)
        self.unrecorded.clear()
        return super().flush(ctx)


@hookimpl
def register_sinks(register: Register) -> None:
    register(LateRecordingWebhookSink)
