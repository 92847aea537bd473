"""Bug class 4: keeps the ctx of its first row and records every later call through it, so those calls
would hang off a node_state that is already closed (the recorder refuses them: the run fails)."""

from __future__ import annotations

from elspeth.api import Context, Register, Row, TransformResult
from elspeth.hookspecs import hookimpl

from .http_transform import HttpTransformConfig, SampleHttpTransform


class StaleContextTransform(SampleHttpTransform):
    name = "sample_http_stale_ctx"

    def __init__(self, config: HttpTransformConfig) -> None:
        super().__init__(config)
        self.first_ctx: Context | None = None

    def process(self, row: Row, ctx: Context) -> TransformResult:
        if self.first_ctx is None:
            self.first_ctx = ctx
        return super().process(row, self.first_ctx)


@hookimpl
def register_transforms(register: Register) -> None:
    register(StaleContextTransform)
