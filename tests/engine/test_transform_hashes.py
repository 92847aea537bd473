"""Every transform boundary records the hash of what the transform handed on (invariant 4), also when the
engine saves computing it because the transform returned the row it was given unchanged (issue 11), and
never when the row came back changed in place (bug class 23)."""

from __future__ import annotations

import pytest

from elspeth import canonical


def _boundaries(w, run_id, node_id):
    return w.query(
        "SELECT token_id, input_hash, output_hash FROM node_states WHERE run_id = :run AND node_id = :node "
        "AND status = 'completed' ORDER BY token_id",
        run=run_id,
        node=node_id,
    )


@pytest.mark.parametrize("change", ["nothing", "value", "add", "reorder", "bool", "before_retry"])
def test_each_output_hash_is_the_hash_of_the_row_handed_on(world, change):
    w = world(change)
    settings = w.settings(transforms=[{"plugin": "test_in_place", "options": {"change": change}}])
    summary = w.run(settings)
    assert summary.status == "completed", summary.error
    written = w.lines("out")
    assert len(written) == 100
    states = _boundaries(w, summary.run_id, "transform:test_in_place")
    assert [s["output_hash"] for s in states] == [canonical.stable_hash(row) for row in written]
    unchanged = [s["input_hash"] == s["output_hash"] for s in states]
    if change == "nothing":
        assert all(unchanged)
    elif change == "bool":  # only the row whose value was 1 changed: True == 1, but not in JSON
        assert unchanged.count(False) == 1 and written[0]["value"] is True
    else:
        assert not any(unchanged)
    w.assert_clean(summary.run_id)


def test_a_list_changed_in_place_inside_the_row_is_hashed_again(world):
    w = world("nested")
    step = {"plugin": "test_in_place", "options": {"change": "nested"}}
    settings = w.settings(transforms=[{**step, "name": "make"}, {**step, "name": "append"}])
    summary = w.run(settings)
    assert summary.status == "completed", summary.error
    written = w.lines("out")
    assert written[5]["tags"] == [5]
    states = _boundaries(w, summary.run_id, "transform:append")
    assert [s["output_hash"] for s in states] == [canonical.stable_hash(row) for row in written]
    assert not any(s["input_hash"] == s["output_hash"] for s in states)
