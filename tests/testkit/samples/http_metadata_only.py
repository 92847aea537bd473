"""Bug class 6: records each call as sizes (bytes sent, bytes received) instead of the bodies."""

from __future__ import annotations

import json

from elspeth.api import Context, Register, Row, TransformResult
from elspeth.hookspecs import hookimpl

from .http_client import send
from .http_transform import PROVIDER, SampleHttpTransform


class MetadataOnlyTransform(SampleHttpTransform):
    name = "sample_http_metadata_only"

    def process(self, row: Row, ctx: Context) -> TransformResult:
        request = self.request_for(row)
        status, data = send(request, self.config.timeout)
        ctx.record_call(
            call_type="http",
            provider=PROVIDER,
            request={"method": request["method"], "url": request["url"], "bytes": len(json.dumps(row))},
            response={"status": status, "bytes": len(data)},
        )
        return self.output(row, json.loads(data))


@hookimpl
def register_transforms(register: Register) -> None:
    register(MetadataOnlyTransform)
