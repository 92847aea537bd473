"""The stats aggregate."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from elspeth.api import Error, Success
from elspeth.errors import ConfigError
from elspeth.plugins.stats import Stats, StatsConfig

from .conftest import FileContext


def stats(**options) -> Stats:
    return Stats(StatsConfig(**options))


def test_one_row_per_group_in_first_seen_order(ctx) -> None:
    rows = [
        {"g": "b", "n": 1, "x": 0.5},
        {"g": "a", "n": 2, "x": 1.5},
        {"g": "b", "n": 3, "x": 2},
    ]
    result = stats(group_by="g", fields=["n", "x"]).process_batch(rows, ctx)
    assert result == Success(
        {"g": "b", "count": 2, "n_sum": 4, "n_mean": 2.0, "x_sum": 2.5, "x_mean": 1.25},
        {"g": "a", "count": 1, "n_sum": 2, "n_mean": 2.0, "x_sum": 1.5, "x_mean": 1.5},
    )
    assert type(result.rows[0]["n_sum"]) is int
    assert type(result.rows[0]["x_sum"]) is float


def test_without_group_by_the_whole_batch_is_one_group(ctx) -> None:
    result = stats(fields=["n"]).process_batch([{"n": 1}, {"n": 2}], ctx)
    assert result == Success({"count": 2, "n_sum": 3, "n_mean": 1.5})


def test_equal_but_differently_typed_group_values_stay_apart(ctx) -> None:
    rows = [{"g": 1}, {"g": 1.0}, {"g": True}, {"g": 1}, {"g": None}]
    result = stats(group_by="g").process_batch(rows, ctx)
    assert result == Success(
        {"g": 1, "count": 2}, {"g": 1.0, "count": 1}, {"g": True, "count": 1}, {"g": None, "count": 1}
    )
    assert [type(row["g"]) for row in result.rows] == [int, float, bool, type(None)]


def test_an_empty_batch_has_no_groups(ctx) -> None:
    assert stats(fields=["n"]).process_batch([], ctx) == Success()


@pytest.mark.parametrize("value", ["3", None, True, [1]])
def test_a_value_that_is_not_a_number_is_an_error(ctx, value) -> None:
    result = stats(fields=["n"]).process_batch([{"n": 1}, {"n": value}], ctx)
    assert isinstance(result, Error)
    assert "'n'" in result.reason
    assert repr(value) in result.reason


def test_a_missing_field_is_an_error(ctx) -> None:
    assert isinstance(stats(fields=["n"]).process_batch([{"m": 1}], ctx), Error)
    result = stats(group_by="g").process_batch([{"m": 1}], ctx)
    assert isinstance(result, Error)
    assert "'g'" in result.reason


def test_a_sum_that_overflows_is_an_error_not_infinity(ctx) -> None:
    result = stats(fields=["x"]).process_batch([{"x": 1e308}, {"x": 1e308}], ctx)
    assert isinstance(result, Error)
    assert "cannot be recorded" in result.reason


def test_duplicate_fields_are_refused() -> None:
    with pytest.raises(ConfigError, match="lists 'n' twice"):
        StatsConfig(fields=["n", "n"])


@given(st.lists(st.tuples(st.sampled_from("abc"), st.integers(-(10**9), 10**9)), max_size=40))
def test_int_sums_are_exact_per_group(pairs: list[tuple[str, int]]) -> None:
    rows = [{"g": g, "n": n} for g, n in pairs]
    result = stats(group_by="g", fields=["n"]).process_batch(rows, FileContext())
    assert isinstance(result, Success)
    assert [row["g"] for row in result.rows] == list(dict.fromkeys(g for g, _ in pairs))
    for row in result.rows:
        values = [n for g, n in pairs if g == row["g"]]
        assert row["count"] == len(values)
        assert row["n_sum"] == sum(values)
        assert type(row["n_sum"]) is int
        assert row["n_mean"] == sum(values) / len(values)
