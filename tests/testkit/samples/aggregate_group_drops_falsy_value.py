"""Bug class 25: a group-by (one row per `group`, with the total of `amount`) that only opens a group for a
row with a non-zero amount (`if not value: continue`), so a group whose amounts are all 0 gives no row."""

from __future__ import annotations

from elspeth.api import BatchResult, Context, Register, Row, Success
from elspeth.hookspecs import hookimpl

from .aggregate_group_drops_falsy_key import GroupTotalsDropsFalsyKey


class GroupTotalsDropsZeroValue(GroupTotalsDropsFalsyKey):
    name = "sample_group_totals_drops_zero"

    def process_batch(self, rows: list[Row], ctx: Context) -> BatchResult:
        totals: dict[str, Row] = {}
        for row in rows:
            key, value = row.get(self.config.key), row.get(self.config.value)
            if not value:
                continue
            group = totals.setdefault(repr(key), {self.config.key: key, "count": 0, "total": 0})
            group["count"] += 1
            group["total"] += value
        return Success(*totals.values())


@hookimpl
def register_aggregates(register: Register) -> None:
    register(GroupTotalsDropsZeroValue)
