"""Bug class 25: a per-row enrichment (each row with the length of its `name` and its batch's size) that
skips rows whose `name` is empty instead of passing them on."""

from __future__ import annotations

from attrs import frozen

from elspeth.api import Aggregate, BatchResult, Context, Register, Row, Success
from elspeth.hookspecs import hookimpl


@frozen
class EnrichConfig:
    field: str = "name"


class EnrichSkipsEmpty(Aggregate):
    name = "sample_enrich_skips_empty"
    config_class = EnrichConfig
    config: EnrichConfig

    def process_batch(self, rows: list[Row], ctx: Context) -> BatchResult:
        field = self.config.field
        return Success(
            *({**row, "length": len(str(row[field])), "batch_size": len(rows)} for row in rows if row.get(field))
        )


@hookimpl
def register_aggregates(register: Register) -> None:
    register(EnrichSkipsEmpty)
