"""The watcher of the rows a plugin is handed (bug class 23): a row changed in place is noted with the field
that changed; a batch's list reordered, or rows only read, is not; values JSON cannot hold are compared too."""

from __future__ import annotations

from typing import Any

from elspeth.api import Aggregate, BatchResult, Context, Row, Success, Transform, TransformResult
from elspeth_testkit.input_watch import watching


class Adds(Transform):
    name = "adds"

    def process(self, row: Row, ctx: Context) -> TransformResult:
        row["n"] = row.get("n", 0) + 1
        return Success(row)


class Copies(Transform):
    name = "copies"

    def process(self, row: Row, ctx: Context) -> TransformResult:
        return Success({**row, "n": 1})


class Sorts(Aggregate):
    name = "sorts"

    def process_batch(self, rows: list[Row], ctx: Context) -> BatchResult:
        rows.sort(key=lambda r: -r["id"])
        return Success({"first": rows[0]["id"]})


class Scales(Aggregate):
    name = "scales"

    def process_batch(self, rows: list[Row], ctx: Context) -> BatchResult:
        rows[1]["amount"] = rows[1]["amount"] * 2
        return Success({"n": len(rows)})


def changed(cls: type, kind: str, *calls: Any) -> list[dict[str, Any]]:
    watched = watching(cls, kind)
    plugin = watched.__new__(watched)
    method = "process" if kind == "transform" else "process_batch"
    for arg in calls:
        getattr(plugin, method)(arg, None)
    return watched.changed_inputs  # type: ignore[attr-defined, no-any-return]


def test_a_row_changed_in_place_is_noted_with_its_field() -> None:
    [found] = changed(Adds, "transform", {"id": 1})
    assert (found["method"], found["call"], found["row"]) == ("process()", 1, 0)
    assert (found["field"], found["before"], found["after"]) == ("n", "(absent)", 1)
    assert found["sha256_before"] != found["sha256_after"]


def test_a_new_row_is_not_a_change() -> None:
    assert changed(Copies, "transform", {"id": 1}, {"id": 2}) == []


def test_reordering_the_batch_list_is_not_a_change_but_a_changed_row_is() -> None:
    batch = [{"id": 1, "amount": 1.5}, {"id": 2, "amount": 2}]
    assert changed(Sorts, "aggregate", [dict(r) for r in batch]) == []
    [found] = changed(Scales, "aggregate", [dict(r) for r in batch])
    assert (found["row"], found["field"], found["before"], found["after"]) == (1, "amount", 2, 4)


def test_an_int_turned_float_is_a_change() -> None:
    class Floats(Transform):
        name = "floats"

        def process(self, row: Row, ctx: Context) -> TransformResult:
            row["amount"] = float(row["amount"])
            return Success(dict(row))

    [found] = changed(Floats, "transform", {"amount": 2})
    assert (found["before"], found["after"]) == (2, 2.0)


def test_values_json_cannot_hold_are_compared_by_repr() -> None:
    assert changed(Copies, "transform", {"x": float("nan")}) == []
    [found] = changed(Adds, "transform", {"x": float("nan")})
    assert found["method"] == "process()"
