"""Bug class 19: logs its `api_key` (at debug level) before every request."""

from __future__ import annotations

import logging

from elspeth.api import Context, Register, Row, TransformResult
from elspeth.hookspecs import hookimpl

from .http_transform import SampleHttpTransform

logger = logging.getLogger(__name__)


class KeyLoggingTransform(SampleHttpTransform):
    name = "sample_http_logs_key"

    def process(self, row: Row, ctx: Context) -> TransformResult:
        logger.debug("POST %s with api-key %s", self.request_for(row)["url"], self.config.api_key)
        return super().process(row, ctx)


@hookimpl
def register_transforms(register: Register) -> None:
    register(KeyLoggingTransform)
