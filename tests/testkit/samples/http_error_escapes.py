"""Bug class 7: records only successful calls; an HTTP error, a timeout, a reset or a garbled body raises
out of process() with nothing recorded."""

from __future__ import annotations

import json

from elspeth.api import Context, Register, Row, TransformResult
from elspeth.hookspecs import hookimpl

from .http_client import HttpStatusError, send
from .http_transform import PROVIDER, SampleHttpTransform


class EscapingErrorTransform(SampleHttpTransform):
    name = "sample_http_error_escapes"

    def process(self, row: Row, ctx: Context) -> TransformResult:
        request = self.request_for(row)
        status, data = send(request, self.config.timeout)
        if status >= 400:
            raise HttpStatusError(status, data)
        document = json.loads(data)
        ctx.record_call(
            call_type="http", provider=PROVIDER, request=request, response={"status": status, "json": document}
        )
        return self.output(row, document)


@hookimpl
def register_transforms(register: Register) -> None:
    register(EscapingErrorTransform)
