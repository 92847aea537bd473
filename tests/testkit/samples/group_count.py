"""A correct group-by that declares its cardinality: one row per distinct value of `field` (compared as JSON
text, so 0, false and "" stay three groups), with the value and the group's row count."""

from __future__ import annotations

import json

from attrs import frozen

from elspeth.api import Aggregate, BatchResult, Cardinality, Context, Register, Row, Success
from elspeth.hookspecs import hookimpl


@frozen
class GroupCountConfig:
    field: str = "group"


class SampleGroupCount(Aggregate):
    name = "sample_group_count"
    config_class = GroupCountConfig
    cardinality = Cardinality.ONE_PER_GROUP
    config: GroupCountConfig

    def group_fields(self) -> tuple[str, ...]:
        return (self.config.field,)

    def process_batch(self, rows: list[Row], ctx: Context) -> BatchResult:
        field = self.config.field
        counts: dict[str, Row] = {}
        for row in rows:
            key = json.dumps(row.get(field), sort_keys=True)
            group = counts.setdefault(key, {field: row.get(field), "count": 0})
            group["count"] += 1
        return Success(*counts.values())


@hookimpl
def register_aggregates(register: Register) -> None:
    register(SampleGroupCount)
