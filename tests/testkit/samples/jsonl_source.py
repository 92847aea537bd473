"""A correct source: one JSON object per line of the file at `path`. A line that is not UTF-8, not JSON,
not an object, or holds NaN or Infinity is quarantined with its line number and reason."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from attrs import frozen

from elspeth.api import Context, Quarantine, Register, Row, Source
from elspeth.hookspecs import hookimpl


@frozen
class JsonlSourceConfig:
    path: str


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


class SampleJsonlSource(Source):
    name = "sample_jsonl"
    config_class = JsonlSourceConfig
    config: JsonlSourceConfig

    def load(self, ctx: Context) -> Iterator[Row | Quarantine]:
        with open(self.config.path, "rb") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    yield self.parse(line)
                except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
                    yield Quarantine(raw=line.decode("utf-8", "replace"), reason=f"line {number}: {exc}")

    def parse(self, line: bytes) -> Row:
        value = json.loads(line.decode("utf-8"), parse_constant=_refuse_constant)
        if not isinstance(value, dict):
            raise ValueError(f"a JSON {type(value).__name__} where an object was expected")
        return value


@hookimpl
def register_sources(register: Register) -> None:
    register(SampleJsonlSource)
