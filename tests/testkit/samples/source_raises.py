"""Bug class 18: a malformed line raises out of load() instead of being quarantined, ending the run."""

from __future__ import annotations

from collections.abc import Iterator

from elspeth.api import Context, Quarantine, Register, Row
from elspeth.hookspecs import hookimpl

from .jsonl_source import SampleJsonlSource


class RaisingSource(SampleJsonlSource):
    name = "sample_raising_source"

    def load(self, ctx: Context) -> Iterator[Row | Quarantine]:
        with open(self.config.path, "rb") as f:
            for line in f:
                if line.strip():
                    yield self.parse(line)


@hookimpl
def register_sources(register: Register) -> None:
    register(RaisingSource)
