"""Bug class 20: the transform fetches each row's item with urllib but declares no `external_calls` and
records nothing, so no wire scenario ever puts it behind the fault proxy."""

from __future__ import annotations

import json

from elspeth.api import Capability, Context, Register, Row, Success, TransformResult
from elspeth.hookspecs import hookimpl

from .http_fetch import SampleHttpFetch, fetch


class UndeclaredHttpFetch(SampleHttpFetch):
    name = "sample_http_fetch_undeclared"
    capabilities = frozenset({Capability.DETERMINISTIC})

    def process(self, row: Row, ctx: Context) -> TransformResult:
        status, data = fetch(self.url_for(row), self.config.timeout)
        return Success({**row, "fetched": json.loads(data)["path"], "status": status})


@hookimpl
def register_transforms(register: Register) -> None:
    register(UndeclaredHttpFetch)
