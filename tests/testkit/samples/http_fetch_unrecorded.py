"""Bug class 3, outside the wire scenarios: the transform declares `external_calls` but records none of its
fetches, so a run that does not put it behind the fault proxy holds no trace of its traffic."""

from __future__ import annotations

import json

from elspeth.api import Context, Register, Row, Success, TransformResult
from elspeth.hookspecs import hookimpl

from .http_fetch import SampleHttpFetch, fetch


class UnrecordedHttpFetch(SampleHttpFetch):
    name = "sample_http_fetch_unrecorded"

    def process(self, row: Row, ctx: Context) -> TransformResult:
        status, data = fetch(self.url_for(row), self.config.timeout)
        return Success({**row, "fetched": json.loads(data)["path"], "status": status})


@hookimpl
def register_transforms(register: Register) -> None:
    register(UnrecordedHttpFetch)
