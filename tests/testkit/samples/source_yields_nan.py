"""Bug class 17: parses lines with a plain `json.loads`, which reads `NaN` and `Infinity` as floats, and
yields them instead of quarantining the line."""

from __future__ import annotations

import json

from elspeth.api import Register, Row
from elspeth.hookspecs import hookimpl

from .jsonl_source import SampleJsonlSource


class NanYieldingSource(SampleJsonlSource):
    name = "sample_nan_source"

    def parse(self, line: bytes) -> Row:
        value = json.loads(line.decode("utf-8"))
        if not isinstance(value, dict):
            raise ValueError("not a JSON object")
        return value


@hookimpl
def register_sources(register: Register) -> None:
    register(NanYieldingSource)
