"""Bug class 19, disguised: sends `api_key` base64-encoded under a header whose name does not look secret
(`X-Client`), and logs that header. The recorder redacts known secrets in their encodings too, so the
recorded request is clean; the log line is beyond its reach."""

from __future__ import annotations

import base64
import logging

from elspeth.api import Register, Row
from elspeth.hookspecs import hookimpl

from .http_client import Request
from .http_transform import SampleHttpTransform

logger = logging.getLogger(__name__)


class KeyInHeaderTransform(SampleHttpTransform):
    name = "sample_http_key_in_header"

    def request_for(self, row: Row) -> Request:
        request = super().request_for(row)
        key = request["headers"].pop("api-key")
        request["headers"]["X-Client"] = base64.b64encode(key.encode()).decode()
        logger.debug("POST %s with X-Client %s", request["url"], request["headers"]["X-Client"])
        return request


@hookimpl
def register_transforms(register: Register) -> None:
    register(KeyInHeaderTransform)
