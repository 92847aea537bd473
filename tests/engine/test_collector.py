"""The garbage collector is tuned for a run and given back as it was (the engine may run inside a host's
process, or a test's)."""

from __future__ import annotations

import gc

from elspeth.engine.collector import THRESHOLDS, tuned_for_a_run


def test_a_run_tunes_the_collector_and_gives_it_back(world):
    before, frozen = gc.get_threshold(), gc.get_freeze_count()
    w = world("w")
    summary = w.run(w.settings())
    assert summary.status == "completed", summary.error
    assert (gc.get_threshold(), gc.get_freeze_count()) == (before, frozen)


def test_inside_the_block_start_up_objects_are_frozen_and_young_collections_rarer():
    before = gc.get_threshold()
    with tuned_for_a_run():
        assert gc.get_threshold() == THRESHOLDS
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == before
