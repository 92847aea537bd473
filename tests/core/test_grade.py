"""The reproducibility grade: a pure function of the nodes' capabilities and the purged bodies, and how a
past run's node gets its capabilities from the plugins installed now."""

from __future__ import annotations

import pytest

from elspeth.api import Capability
from elspeth.evidence.grade import Level, NodeCapabilities, grade, node_capabilities
from elspeth.plugin_manager import PluginRegistry, make_plugin_manager
from elspeth.plugins import builtin

DET = frozenset({Capability.DETERMINISTIC})
CALLS = frozenset({Capability.EXTERNAL_CALLS})
DET_CALLS = DET | CALLS
NONE: frozenset[Capability] = frozenset()


def nodes(*capabilities: frozenset[Capability] | None) -> list[NodeCapabilities]:
    return [NodeCapabilities(f"n{i}", caps) for i, caps in enumerate(capabilities)]


@pytest.mark.parametrize(
    ("capabilities", "purged", "level", "reason"),
    [
        ((DET, DET, DET), 0, Level.REPRODUCIBLE, None),
        ((DET, CALLS, DET), 0, Level.REPLAYABLE, "external calls, every body recorded: n1"),
        ((DET, DET, DET_CALLS), 0, Level.REPLAYABLE, "n2"),  # a sink that calls out: replayed, not rerun
        ((DET, CALLS, DET), 3, Level.ATTRIBUTABLE, "3 recorded call bodies purged"),
        ((DET, DET, DET), 3, Level.REPRODUCIBLE, None),  # bodies of no call that matters to a rerun
        ((DET, NONE, DET), 0, Level.ATTRIBUTABLE, "nondeterministic without recorded calls: n1"),
        ((DET, None, DET), 0, Level.ATTRIBUTABLE, "capabilities unknown: n1"),
    ],
)
def test_grade(capabilities, purged, level, reason):
    found = grade(nodes(*capabilities), bodies_purged=purged)
    assert found.level is level
    if reason is None:
        assert found.reasons == ()
    else:
        assert any(reason in r for r in found.reasons), found.reasons


def test_notes_on_how_capabilities_were_read_are_kept():
    found = grade([NodeCapabilities("source:csv", DET, "declared by 2.0; the run used 1.0")], bodies_purged=0)
    assert found.level is Level.REPRODUCIBLE
    assert found.reasons == ("source:csv: declared by 2.0; the run used 1.0",)


@pytest.fixture(scope="module")
def registry() -> PluginRegistry:
    return PluginRegistry(make_plugin_manager([builtin], load_entry_points=False))


def test_capabilities_of_the_installed_plugin(registry):
    info = registry.get("source", "csv")
    same = node_capabilities(registry, "source:csv", "source", "csv", info.distribution, info.version)
    assert same == NodeCapabilities("source:csv", frozenset(info.cls.capabilities), None)
    older = node_capabilities(registry, "source:csv", "source", "csv", info.distribution, "0.0.1")
    assert older.capabilities == frozenset(info.cls.capabilities)
    assert older.note == f"capabilities as {info.distribution} {info.version} declares them; the run used 0.0.1"


def test_a_plugin_no_longer_installed_or_from_elsewhere_is_unknown(registry):
    gone = node_capabilities(registry, "transform:t", "transform", "vanished", "elspeth-vanished", "1.0")
    assert gone.capabilities is None and "'vanished' (elspeth-vanished 1.0) is not installed" in (gone.note or "")
    other = node_capabilities(registry, "source:csv", "source", "csv", "someone-elses-csv", "1.0")
    assert other.capabilities is None and "now comes from" in (other.note or "")
    assert grade([gone], bodies_purged=0).level is Level.ATTRIBUTABLE
