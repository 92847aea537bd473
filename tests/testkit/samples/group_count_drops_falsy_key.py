"""Bug class 25, declared: the group-by declares one output per group, but skips rows whose key is falsy
(`if not key: continue`), so a batch of rows whose group is "" (or 0, or false) gives no row for them. The
engine fails such a batch for breaking the declaration; the kit names it."""

from __future__ import annotations

from elspeth.api import BatchResult, Context, Register, Row, Success
from elspeth.hookspecs import hookimpl

from .group_count import SampleGroupCount


class DropsFalsyKeyDeclared(SampleGroupCount):
    name = "sample_group_drops_falsy_declared"

    def process_batch(self, rows: list[Row], ctx: Context) -> BatchResult:
        counts: dict[object, Row] = {}
        for row in rows:
            key = row.get(self.config.field)
            if not key:
                continue
            counts.setdefault(key, {self.config.field: key, "count": 0})["count"] += 1
        return Success(*counts.values())


@hookimpl
def register_aggregates(register: Register) -> None:
    register(DropsFalsyKeyDeclared)
