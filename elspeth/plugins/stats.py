"""The `stats` aggregate: count, sum and mean per group."""

from __future__ import annotations

import math
from typing import Any

from attrs import field, frozen

from elspeth.api import Aggregate, BatchResult, Cardinality, Context, Error, Row, Success
from elspeth.canonical import describe_non_canonical, dumps
from elspeth.options import no_duplicates


@frozen
class StatsConfig:
    group_by: str | None = None
    """One output row per distinct value of this field; None: one row for the whole batch."""
    fields: list[str] = field(factory=list, validator=no_duplicates)
    """Numeric fields to sum and average, as `<field>_sum` and `<field>_mean`."""


class _Group:
    def __init__(self, key_value: Any, n_fields: int) -> None:
        self.key_value = key_value
        self.count = 0
        self.values: list[list[int | float]] = [[] for _ in range(n_fields)]


class Stats(Aggregate):
    """One row per group, in the order the groups first appear: the group_by field, `count`, and for each
    field its `_sum` (an int when every value is an int) and `_mean`."""

    name = "stats"
    config_class = StatsConfig
    cardinality = Cardinality.ONE_PER_GROUP
    config: StatsConfig

    def group_fields(self) -> tuple[str, ...]:
        return () if self.config.group_by is None else (self.config.group_by,)

    def process_batch(self, rows: list[Row], ctx: Context) -> BatchResult:
        group_by, fields = self.config.group_by, self.config.fields
        groups: dict[str, _Group] = {}
        for index, row in enumerate(rows):
            key_value = None
            if group_by is not None:
                if group_by not in row:
                    return Error(reason=f"row {index} of the batch has no field {group_by!r} (option `group_by`)")
                key_value = row[group_by]
            # Grouped by JSON text so that 1, 1.0 and true stay apart (as dict keys they would merge).
            key = dumps(key_value)
            group = groups.get(key)
            if group is None:
                group = groups[key] = _Group(key_value, len(fields))
            group.count += 1
            for values, name in zip(group.values, fields, strict=True):
                value = row.get(name)
                if isinstance(value, bool) or not isinstance(value, int | float):
                    return Error(
                        reason=f"field {name!r} (option `fields`) is {value!r} in row {index} of the batch, "
                        "which is not a number; convert it upstream (e.g. the csv source's `types` option)"
                    )
                values.append(value)
        out = [self._summary(group) for group in groups.values()]
        for summary in out:
            problem = describe_non_canonical(summary)
            if problem is not None:
                return Error(reason=f"a result cannot be recorded exactly: {problem}")
        return Success(*out)

    def _summary(self, group: _Group) -> Row:
        summary: Row = {} if self.config.group_by is None else {self.config.group_by: group.key_value}
        summary["count"] = group.count
        for name, values in zip(self.config.fields, group.values, strict=True):
            total: int | float
            if all(type(v) is int for v in values):
                total = sum(values)
            else:
                try:
                    total = math.fsum(values)
                except OverflowError:
                    total = math.inf  # reported as unrecordable by the caller
            summary[f"{name}_sum"] = total
            summary[f"{name}_mean"] = total / group.count
        return summary
