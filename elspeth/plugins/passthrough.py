"""The `passthrough` transform."""

from __future__ import annotations

from elspeth.api import Context, Row, Success, Transform, TransformResult


class Passthrough(Transform):
    """Hands each row on unchanged."""

    name = "passthrough"

    def process(self, row: Row, ctx: Context) -> TransformResult:
        return Success(row)
