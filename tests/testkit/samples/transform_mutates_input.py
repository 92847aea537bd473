"""Bug class 23: the transform adds its field to the row it was handed, in place, and returns that same row.
Its output is right; but the engine recorded the input's hash before the call, and that row no longer
exists as recorded."""

from __future__ import annotations

from elspeth.api import Capability, Context, NoConfig, Register, Row, Success, Transform, TransformResult
from elspeth.hookspecs import hookimpl


class MutatingTransform(Transform):
    name = "sample_mutating"
    config_class = NoConfig
    capabilities = frozenset({Capability.DETERMINISTIC})

    def process(self, row: Row, ctx: Context) -> TransformResult:
        row["fields"] = len(row)
        return Success(row)


@hookimpl
def register_transforms(register: Register) -> None:
    register(MutatingTransform)
