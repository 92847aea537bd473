"""A transform that needs a `text` field, which the kit's generic rows lack, so it answers Error to every
one of them; and that stamps each output with a fresh id although it declares 'deterministic' (the planted
bug). Fed the generic rows, the kit must not pass it; fed rows with `text`, the determinism scenario
catches the bug."""

from __future__ import annotations

import uuid

from attrs import frozen

from elspeth.api import Capability, Context, Error, Register, Row, Success, Transform, TransformResult
from elspeth.hookspecs import hookimpl


@frozen
class NeedsTextConfig:
    field: str = "text"


class NeedsText(Transform):
    name = "sample_needs_text"
    config_class = NeedsTextConfig
    capabilities = frozenset({Capability.DETERMINISTIC})
    config: NeedsTextConfig

    def process(self, row: Row, ctx: Context) -> TransformResult:
        text = row.get(self.config.field)
        if not isinstance(text, str):
            return Error(f"field {self.config.field!r} (option `field`) is not text")
        return Success({**row, "words": len(text.split()), "stamp": uuid.uuid4().hex})


@hookimpl
def register_transforms(register: Register) -> None:
    register(NeedsText)
