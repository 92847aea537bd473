"""An aggregate's declared cardinality, enforced on every batch (bug class 25): a batch whose outputs break
it fails with a recorded error naming the rule and the counts, and its rows go to their failure outcome;
nothing is lost unrecorded, and batches that keep to it are untouched."""

from __future__ import annotations

import json

import pytest

from elspeth.api import Cardinality, group_key


def counted(w, plugin, *, count=12, trigger=4, **options):
    return w.settings(
        source={"plugin": "test_numbers", "options": {"count": count}},
        aggregations=[{"plugin": plugin, "name": "agg", "options": options, "trigger": {"count": trigger}}],
        sinks=("out", "errors"),
        on_error="errors",
    )


def failed_batches(w, run_id):
    rows = w.query(
        "SELECT batch_id, error_json FROM batches WHERE run_id = :run AND status = 'failed' ORDER BY batch_id",
        run=run_id,
    )
    return [{**r, "error": json.loads(r["error_json"])} for r in rows]


def test_a_group_by_that_loses_a_group_fails_each_such_batch_naming_the_rule_and_counts(world):
    w = world("w")
    summary = w.run(counted(w, "test_group_counter", drop=["g0"]))
    assert summary.status == "completed", summary.error
    w.assert_clean(summary.run_id)
    failed = failed_batches(w, summary.run_id)
    assert len(failed) == 3, "every batch of 4 holds a row of group g0"
    error = failed[0]["error"]
    assert error["reason"] == (
        "aggregate-cardinality: aggregate:agg declares one output per group of rows sharing 'group', so its 4 "
        "input rows should give 3 output(s), but process_batch() returned 2"
    )
    assert error["details"] == {
        "invariant": "aggregate-cardinality",
        "cardinality": "one_per_group",
        "group_fields": ["group"],
        "inputs": 4,
        "expected": 3,
        "outputs": 2,
    }
    assert not error["retryable"], "the same rows would break it again"
    assert not w.out("out").exists() or w.lines("out") == []
    assert sorted(line["id"] for line in w.lines("errors")) == list(range(12)), "every row to its error sink"
    outcomes = w.query(
        "SELECT outcome, count(*) AS n FROM token_outcomes WHERE run_id = :run AND node_id = 'aggregate:agg' "
        "GROUP BY outcome",
        run=summary.run_id,
    )
    assert outcomes == [{"outcome": "failed", "n": 12}]


def test_only_the_batch_that_breaks_a_per_row_declaration_fails(world):
    w = world("w")
    summary = w.run(counted(w, "test_per_row", count=10, drop=[5]))
    assert summary.status == "completed", summary.error
    w.assert_clean(summary.run_id)
    [failed] = failed_batches(w, summary.run_id)
    assert failed["error"]["details"]["expected"] == 4 and failed["error"]["details"]["outputs"] == 3
    assert "declares one output per input row" in failed["error"]["reason"]
    assert [line["id"] for line in w.lines("out")] == [0, 1, 2, 3, 8, 9]
    assert [line["id"] for line in w.lines("errors")] == [4, 5, 6, 7]


@pytest.mark.parametrize("group_by", ["group", None])
def test_an_aggregate_keeping_to_its_declaration_is_untouched(world, group_by):
    w = world("w")
    summary = w.run(counted(w, "test_group_counter", count=10, group_by=group_by))
    assert summary.status == "completed", summary.error
    w.assert_clean(summary.run_id)
    assert failed_batches(w, summary.run_id) == []
    # Batches of ids 0-3, 4-7, 8-9: three groups, three and two; or one summary each.
    assert [line["n"] for line in w.lines("out")] == ([2, 1, 1, 2, 1, 1, 1, 1] if group_by else [4, 4, 2])


def test_groups_are_told_apart_by_their_json_values():
    rows = [{"k": 0}, {"k": 0.0}, {"k": False}, {"k": ""}, {"k": None}, {}, {"k": []}, {"k": {}}, {"k": 0}]
    assert Cardinality.ONE_PER_GROUP.expected(rows, ("k",)) == 8
    assert Cardinality.ONE_PER_GROUP.expected(rows) == 1
    assert Cardinality.ONE_PER_ROW.expected(rows) == 9
    assert Cardinality.ONE_PER_BATCH.expected(rows) == 1
    assert Cardinality.UNCONSTRAINED.expected(rows) is None
    assert group_key({"a": 1, "b": "x"}, ("b", "a")) == group_key({"b": "x", "a": 1}, ("b", "a"))
    assert group_key({"a": 1}, ("a",)) != group_key({"a": 1.0}, ("a",)) != group_key({"a": True}, ("a",))
    assert group_key({"a": {"x": [1]}}, ("a",)) == group_key({"a": {"x": [1]}}, ("a",))
    assert group_key({}, ("a",)) != group_key({"a": None}, ("a",))
