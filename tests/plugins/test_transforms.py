"""The passthrough, field_map and route transforms."""

from __future__ import annotations

import pytest

from elspeth.api import Error, NoConfig, Routed, Success
from elspeth.errors import ConfigError
from elspeth.plugins.field_map import FieldMap, FieldMapConfig
from elspeth.plugins.passthrough import Passthrough
from elspeth.plugins.route import Route, RouteConfig


def test_passthrough_hands_the_row_on(ctx) -> None:
    row = {"a": 1, "b": [None]}
    assert Passthrough(NoConfig()).process(row, ctx) == Success(row)


def field_map(**options) -> FieldMap:
    return FieldMap(FieldMapConfig(**options))


def test_rename_keeps_each_field_in_its_place(ctx) -> None:
    result = field_map(rename={"b": "beta", "a": "b"}).process({"a": 1, "b": 2, "c": 3}, ctx)
    assert result == Success({"b": 1, "beta": 2, "c": 3})
    assert list(result.rows[0]) == ["b", "beta", "c"]


def test_select_keeps_only_the_listed_fields_in_order_after_renaming(ctx) -> None:
    fm = field_map(rename={"a": "alpha"}, select=["c", "alpha"], constants={"c": "fixed"})
    result = fm.process({"a": 1, "b": 2, "c": 3}, ctx)
    assert result == Success({"c": "fixed", "alpha": 1})
    assert list(result.rows[0]) == ["c", "alpha"]


def test_constants_are_added(ctx) -> None:
    assert field_map(constants={"source": "crm"}).process({"a": 1}, ctx) == Success({"a": 1, "source": "crm"})


def test_a_missing_field_to_rename_is_the_rows_error(ctx) -> None:
    result = field_map(rename={"x": "y"}).process({"a": 1}, ctx)
    assert isinstance(result, Error)
    assert "'x'" in result.reason
    assert "`rename`" in result.reason


def test_a_missing_field_to_select_is_the_rows_error(ctx) -> None:
    result = field_map(rename={"a": "b"}, select=["a"]).process({"a": 1}, ctx)
    assert isinstance(result, Error)
    assert "'a'" in result.reason
    assert "`select`" in result.reason


def test_renaming_onto_an_existing_field_is_the_rows_error(ctx) -> None:
    result = field_map(rename={"a": "b"}).process({"a": 1, "b": 2}, ctx)
    assert isinstance(result, Error)
    assert "overwrite" in result.reason


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"rename": {"a": "x", "b": "x"}}, "renames both 'a' and 'b' to 'x'"),
        ({"select": ["a"], "constants": {"k": "v"}}, "add it to `select`"),
        ({"select": ["a", "a"]}, "lists 'a' twice"),
    ],
)
def test_field_map_options_are_checked(options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        FieldMapConfig(**options)


def route(**options) -> Route:
    return Route(RouteConfig(**options))


def test_route_sends_a_matching_row_to_its_sink(ctx) -> None:
    r = route(field="kind", routes={"a": "sink_a", "1": "ones", "True": "truth"})
    assert r.process({"kind": "a"}, ctx) == Routed("sink_a", {"kind": "a"})
    assert r.process({"kind": 1}, ctx) == Routed("ones", {"kind": 1})
    assert r.process({"kind": True}, ctx) == Routed("truth", {"kind": True})


def test_unmatched_rows_go_to_the_default_or_continue(ctx) -> None:
    assert route(field="k", routes={"a": "x"}, default="rest").process({"k": "b"}, ctx) == Routed("rest", {"k": "b"})
    assert route(field="k", routes={"a": "x"}).process({"k": "b"}, ctx) == Success({"k": "b"})


def test_route_on_a_missing_field_is_the_rows_error(ctx) -> None:
    result = route(field="k", routes={"a": "x"}, default="rest").process({"other": 1}, ctx)
    assert isinstance(result, Error)
    assert "'k'" in result.reason
