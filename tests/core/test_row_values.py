"""What a step changed, field by field: compared as JSON, in a stable order."""

from __future__ import annotations

from elspeth.landscape.row_values import FieldChange, diff


def test_fields_added_changed_and_removed_in_the_outputs_order_then_the_removed():
    before = {"id": 1, "name": "Ada", "note": "x"}
    after = {"name": "ADA", "id": 1, "tier": "gold"}
    assert diff(before, after) == [
        FieldChange("name", "changed", "Ada", "ADA"),
        FieldChange("tier", "added", None, "gold"),
        FieldChange("note", "removed", "x", None),
    ]


def test_values_compare_as_json():
    # 1.0 is stored as 1 in canonical JSON: not a change. true is not the number 1, "1" is not 1.
    assert diff({"a": 1.0}, {"a": 1}) == []
    assert diff({"a": True}, {"a": 1}) == [FieldChange("a", "changed", True, 1)]
    assert diff({"a": "1"}, {"a": 1}) == [FieldChange("a", "changed", "1", 1)]
    assert diff({"a": {"b": [1, 2]}}, {"a": {"b": [1, 2]}}) == []


def test_a_value_that_is_not_an_object_changes_whole():
    assert diff([1, 2], [1, 3]) == [FieldChange("", "changed", [1, 2], [1, 3])]
    assert diff("same", "same") == []
