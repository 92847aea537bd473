"""Bug class 24: skips a line that is not JSON at all (as a parser's "skip malformed lines" option would)
instead of quarantining it; other bad lines it still quarantines, so some records are quarantined and the
good ones all arrive, and only a count of every record shows the one that vanished."""

from __future__ import annotations

import json
from collections.abc import Iterator

from elspeth.api import Context, Quarantine, Register, Row
from elspeth.hookspecs import hookimpl

from .jsonl_source import SampleJsonlSource


class LineSkippingSource(SampleJsonlSource):
    name = "sample_skipping_source"

    def load(self, ctx: Context) -> Iterator[Row | Quarantine]:
        with open(self.config.path, "rb") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    yield self.parse(line)
                except json.JSONDecodeError:
                    continue  # the bug: a malformed line vanishes without a trace
                except ValueError as exc:
                    yield Quarantine(raw=line.decode("utf-8", "replace"), reason=f"line {number}: {exc}")


@hookimpl
def register_sources(register: Register) -> None:
    register(LineSkippingSource)
