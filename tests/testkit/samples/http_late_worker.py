"""Bug class 21: waits for each answer in a worker thread, at most `wait` seconds, then gives the row a
retryable Error; the worker carries on, and records what it got through the ctx the plugin holds for the row
in process at that moment (`self.ctx`), so a late answer is recorded under another row's state, or another
attempt's. Each call on its own is complete and correct."""

from __future__ import annotations

import concurrent.futures
import json
import time
from typing import Any

from attrs import frozen

from elspeth.api import Context, Error, Register, Row, TransformResult
from elspeth.hookspecs import hookimpl

from .http_client import HttpStatusError, Request, send
from .http_transform import PROVIDER, HttpTransformConfig, SampleHttpTransform


@frozen
class LateWorkerConfig(HttpTransformConfig):
    wait: float = 0.2


class LateWorkerTransform(SampleHttpTransform):
    name = "sample_http_late_worker"
    config_class = LateWorkerConfig
    config: LateWorkerConfig

    def __init__(self, config: LateWorkerConfig) -> None:
        super().__init__(config)
        self.workers = concurrent.futures.ThreadPoolExecutor(4, thread_name_prefix="sample-late-worker")
        self.ctx: Context | None = None

    def close(self) -> None:
        self.workers.shutdown(wait=True)

    def process(self, row: Row, ctx: Context) -> TransformResult:
        self.ctx = ctx
        answer = self.workers.submit(self.fetch, self.request_for(row))
        try:
            document = answer.result(timeout=self.config.wait)
        except concurrent.futures.TimeoutError:
            return Error(f"no answer within {self.config.wait} s", retryable=True)
        except HttpStatusError as exc:
            return Error(str(exc), retryable=exc.status == 429 or exc.status >= 500)
        except (OSError, ValueError) as exc:
            return Error(f"{type(exc).__name__}: {exc}", retryable=True)
        return self.output(row, document)

    def fetch(self, request: Request) -> Any:
        started = time.perf_counter()

        def record(**outcome: Any) -> None:
            assert self.ctx is not None
            latency_ms = (time.perf_counter() - started) * 1000
            self.ctx.record_call(call_type="http", provider=PROVIDER, request=request, latency_ms=latency_ms, **outcome)

        try:
            status, data = send(request, self.config.timeout)
        except OSError as exc:
            record(error={"type": type(exc).__name__, "message": str(exc)})
            raise
        text = data.decode("utf-8", "replace")
        if status >= 400:
            record(response={"status": status, "text": text}, error={"status": status})
            raise HttpStatusError(status, data)
        document = json.loads(data)
        record(response={"status": status, "json": document})
        return document


@hookimpl
def register_transforms(register: Register) -> None:
    register(LateWorkerTransform)
