"""Bug class 22: records each call inside `try/except Exception` and carries on when the record fails, so a
request that crossed the wire can leave no record while its row goes on as if audited."""

from __future__ import annotations

import logging

from elspeth.api import Context, Register, Row, Success, TransformResult
from elspeth.hookspecs import hookimpl

from .http_client import send
from .http_transform import PROVIDER, SampleHttpTransform

log = logging.getLogger(__name__)


class AuditSwallowingTransform(SampleHttpTransform):
    name = "sample_http_swallows_audit"

    def process(self, row: Row, ctx: Context) -> TransformResult:
        request = self.request_for(row)
        status, data = send(request, self.config.timeout)
        response = {"status": status, "text": data.decode("utf-8", "replace")}
        try:
            ctx.record_call(call_type="http", provider=PROVIDER, request=request, response=response)
        except Exception:  # the bug: the audit failed, and the row carries on as if it had not
            log.warning("could not record the call; carrying on")
        return Success({**row, "status": status})


@hookimpl
def register_transforms(register: Register) -> None:
    register(AuditSwallowingTransform)
