"""Bug class 19, disguised: sends `api_key` base64-encoded under a header whose name does not look secret
(`X-Client`), so neither the recorder's redaction by name nor by value touches it on its way into the
recorded request."""

from __future__ import annotations

import base64

from elspeth.api import Register, Row
from elspeth.hookspecs import hookimpl

from .http_client import Request
from .http_transform import SampleHttpTransform


class KeyInHeaderTransform(SampleHttpTransform):
    name = "sample_http_key_in_header"

    def request_for(self, row: Row) -> Request:
        request = super().request_for(row)
        key = request["headers"].pop("api-key")
        request["headers"]["X-Client"] = base64.b64encode(key.encode()).decode()
        return request


@hookimpl
def register_transforms(register: Register) -> None:
    register(KeyInHeaderTransform)
