"""Not thread-safe: its client keeps "the current row", which process() sets and reads back after the call,
so with rows in flight together a row's output carries the fields of whichever row came in last. Correct
one row at a time; the concurrency scenario catches it once the engine runs rows in flight together."""

from __future__ import annotations

from typing import Any

from elspeth.api import Context, Error, Register, Row, TransformResult
from elspeth.hookspecs import hookimpl

from .http_client import HttpStatusError, recorded_call
from .http_transform import PROVIDER, HttpTransformConfig, SampleHttpTransform


class RowClient:
    """A client for one row at a time: `use(row)`, then `ask(ctx)` about it."""

    def __init__(self, transform: SampleHttpTransform) -> None:
        self.transform = transform
        self.row: Row = {}

    def use(self, row: Row) -> None:
        self.row = row

    def ask(self, ctx: Context) -> Any:
        return recorded_call(ctx, PROVIDER, self.transform.request_for(self.row), self.transform.config.timeout)


class SharedRowTransform(SampleHttpTransform):
    name = "sample_http_shared_row"

    def __init__(self, config: HttpTransformConfig) -> None:
        super().__init__(config)
        self.client = RowClient(self)

    def process(self, row: Row, ctx: Context) -> TransformResult:
        self.client.use(row)
        try:
            document = self.client.ask(ctx)
        except HttpStatusError as exc:
            return Error(str(exc), retryable=exc.status == 429 or exc.status >= 500)
        except (OSError, ValueError) as exc:
            return Error(f"{type(exc).__name__}: {exc}", retryable=True)
        return self.output(self.client.row, document)


@hookimpl
def register_transforms(register: Register) -> None:
    register(SharedRowTransform)
