"""Bug class 3: before its first row the transform sends a health check that it never records."""

from __future__ import annotations

from elspeth.api import Context, Register, Row, TransformResult
from elspeth.hookspecs import hookimpl

from .http_client import send
from .http_transform import SampleHttpTransform


class UnrecordedHealthCheck(SampleHttpTransform):
    name = "sample_http_unrecorded"
    checked = False

    def process(self, row: Row, ctx: Context) -> TransformResult:
        if not self.checked:
            send({"method": "GET", "url": f"{self.config.url.rstrip('/')}/health"}, self.config.timeout)
            self.checked = True
        return super().process(row, ctx)


@hookimpl
def register_transforms(register: Register) -> None:
    register(UnrecordedHealthCheck)
