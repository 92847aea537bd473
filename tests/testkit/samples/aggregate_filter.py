"""A correct filter that declares nothing: passes on the rows whose `field` is set (not empty, zero or
false), as they are. Its count rightly depends on the values; the kit must not take the ordinary rows,
which all pass, for a rule of one output per input."""

from __future__ import annotations

from attrs import frozen

from elspeth.api import Aggregate, BatchResult, Context, Register, Row, Success
from elspeth.hookspecs import hookimpl


@frozen
class FilterConfig:
    field: str = "name"


class KeepSet(Aggregate):
    name = "sample_keep_set"
    config_class = FilterConfig
    config: FilterConfig

    def process_batch(self, rows: list[Row], ctx: Context) -> BatchResult:
        return Success(*(row for row in rows if row.get(self.config.field)))


@hookimpl
def register_aggregates(register: Register) -> None:
    register(KeepSet)
