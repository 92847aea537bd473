"""Every terminal outcome is final: a token that has one is never handed back as unfinished work, and a
resume never processes it again (bug class 15). Parametrized over the enum itself, so a new member that
recovery does not know about fails here until the engine produces it and this pipeline covers it."""

from __future__ import annotations

from typing import Any

import pytest

from elspeth.landscape.statuses import TokenOutcome
from elspeth.landscape.unfinished import unfinished_tokens

from .conftest import World


def every_outcome(w: World) -> dict[str, Any]:
    """A pipeline in which some token ends with each outcome."""
    return w.settings(
        source={"plugin": "test_numbers", "options": {"count": 60, "b_every": 4, "quarantine_at": [7, 31]}},
        transforms=[
            {"plugin": "test_flaky", "options": {"fail_every": 11}},  # failed
            {"plugin": "test_fanout", "options": {"copies_mod": 3}},  # filtered (0 copies), expanded (2)
            {"plugin": "route", "options": {"field": "dest", "routes": {"b": "b"}}},  # routed
        ],
        aggregations=[
            {
                "plugin": "stats",
                "options": {"group_by": "group", "fields": ["value"]},  # consumed
                "trigger": {"count": 6},
            }
        ],
        sinks=["out", "b"],  # completed: the stats rows at the default sink
        default_sink="out",
    )


@pytest.fixture(scope="module")
def crashed_and_resumed(tmp_path_factory: pytest.TempPathFactory, registry) -> dict[str, Any]:
    """Run until the third flush of `out` fails, note what the Landscape holds, then resume."""
    w = World(tmp_path_factory.mktemp("outcomes"), registry)
    settings = every_outcome(w)
    failed = w.run(settings, faults={"out": {"at": "flush", "n": 3, "action": "raise"}})
    assert failed.status == "failed"
    run_id = failed.run_id
    outcomes = {
        r["token_id"]: r["outcome"]
        for r in w.query("SELECT token_id, outcome FROM token_outcomes WHERE run_id = :run", run=run_id)
    }
    with w.connect() as conn:
        unfinished = {t.token_id for t in unfinished_tokens(conn, run_id, set())}
    high = w.query(
        "SELECT (SELECT max(state_id) FROM node_states WHERE run_id = :run) AS state, "
        "(SELECT max(batch_id) FROM batches WHERE run_id = :run) AS batch",
        run=run_id,
    )[0]
    resumed = w.resume(run_id, settings)
    assert resumed.status == "completed", resumed.error
    return {"world": w, "run_id": run_id, "outcomes": outcomes, "unfinished": unfinished, "high": high}


@pytest.mark.parametrize("outcome", list(TokenOutcome), ids=[o.value for o in TokenOutcome])
def test_class15_a_token_with_a_terminal_outcome_is_never_reprocessed(crashed_and_resumed, outcome):
    w, run_id = crashed_and_resumed["world"], crashed_and_resumed["run_id"]
    tokens = {t for t, o in crashed_and_resumed["outcomes"].items() if o == outcome}
    assert tokens, f"the crashed attempt should have finished some token as {outcome.value!r}"
    assert crashed_and_resumed["unfinished"], "the crashed attempt should have left work unfinished"

    assert not tokens & crashed_and_resumed["unfinished"], "unfinished_tokens returned finished tokens"
    high = crashed_and_resumed["high"]
    again = w.query(
        f"SELECT token_id, state_id FROM node_states WHERE run_id = :run AND state_id > :high "
        f"AND token_id IN ({','.join(map(str, sorted(tokens)))})",
        run=run_id,
        high=high["state"],
    )
    assert again == [], f"the resume processed {outcome.value} tokens again"
    rebatched = w.query(
        f"SELECT token_id, batch_id FROM batch_members WHERE run_id = :run AND batch_id > :high "
        f"AND token_id IN ({','.join(map(str, sorted(tokens)))})",
        run=run_id,
        high=high["batch"],
    )
    assert rebatched == [], f"the resume put {outcome.value} tokens into a batch again"
    now = {
        r["token_id"]: r["outcome"]
        for r in w.query("SELECT token_id, outcome FROM token_outcomes WHERE run_id = :run", run=run_id)
    }
    assert all(now[t] == outcome for t in tokens)
    w.assert_clean(run_id)
