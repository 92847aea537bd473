"""Bug class 25, undeclared: a group-by (one row per `group`, with its count and total `amount`) that treats
a falsy key as no key (`if not key: continue`): rows whose group is "", 0 or false vanish."""

from __future__ import annotations

from attrs import frozen

from elspeth.api import Aggregate, BatchResult, Context, Register, Row, Success
from elspeth.hookspecs import hookimpl


@frozen
class GroupTotalsConfig:
    key: str = "group"
    value: str = "amount"


class GroupTotalsDropsFalsyKey(Aggregate):
    name = "sample_group_totals_drops_falsy"
    config_class = GroupTotalsConfig
    config: GroupTotalsConfig

    def process_batch(self, rows: list[Row], ctx: Context) -> BatchResult:
        totals: dict[str, Row] = {}
        for row in rows:
            key = row.get(self.config.key)
            if not key:
                continue
            group = totals.setdefault(str(key), {self.config.key: key, "count": 0, "total": 0})
            group["count"] += 1
            value = row.get(self.config.value)
            group["total"] += value if isinstance(value, int | float) else 0
        return Success(*totals.values())


@hookimpl
def register_aggregates(register: Register) -> None:
    register(GroupTotalsDropsFalsyKey)
