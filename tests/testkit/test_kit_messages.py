"""What the kit's failure messages say: how output rows differ from the expected ones (changed values,
missing, duplicated, unexpected rows, only the order) and under which invariant, and the plugin's label."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import pytest

from elspeth.api import Sink
from elspeth.plugin_manager import PluginInfo
from elspeth_testkit import PluginSetup
from elspeth_testkit.checks import same_rows
from elspeth_testkit.failures import ConformanceFailure
from elspeth_testkit.harness import Harness, PluginUnderTest

ROWS = [{"id": i, "name": f"row {i}"} for i in range(20)]


class OnePluginRegistry:
    """Stands in for the registry of a plugin that is not installed."""

    def __init__(self, info: PluginInfo) -> None:
        self.info = info

    def get(self, kind: str, name: str) -> PluginInfo:
        return self.info

    def with_class(self, kind: str, name: str, cls: type) -> OnePluginRegistry:
        return OnePluginRegistry(attrs.evolve(self.info, cls=cls))


def harness(tmp_path: Path, distribution: str = "my-plugin", version: str = "0.3.0") -> Harness:
    info = PluginInfo("my_sink", "sink", Sink, distribution, version, "register_sinks")
    registry: Any = OnePluginRegistry(info)
    return Harness(PluginUnderTest(info, PluginSetup()), "test_sink_recovery_mid_write", tmp_path, registry)


def failure(tmp_path: Path, got: list[dict], expected: list[dict] = ROWS) -> ConformanceFailure:
    with pytest.raises(ConformanceFailure) as caught:
        same_rows(harness(tmp_path), "resume", got, expected, "after a resume", per_cause=True)
    return caught.value


def test_changed_values_are_not_called_missing(tmp_path: Path) -> None:
    got = [{**r, "name": r["name"].upper()} for r in ROWS]
    found = failure(tmp_path, got)
    assert found.invariant == "resume-changed"
    assert "expected 20 rows in order, got 20: 20 with values that differ from the expected ones;" in found.message
    assert "missing" not in found.message.split(";")[0]
    assert 'the first difference is at row 0: expected {"id": "0", "name": "row 0"}, got' in found.message


@pytest.mark.parametrize(
    ("got", "invariant", "detail"),
    [
        pytest.param(ROWS[:15], "resume-missing", "got 15: 5 missing; the first difference is at row 15", id="missing"),
        pytest.param(ROWS + ROWS[12:14], "resume-duplicated", "got 22: 2 duplicated;", id="duplicated"),
        pytest.param([*ROWS, {"id": 99}], "resume-unexpected", "got 21: 1 that were never expected;", id="unexpected"),
        pytest.param(ROWS[1:] + ROWS[:1], "resume-order", "got 20: the same rows in a different order;", id="order"),
        pytest.param(
            [*ROWS[:10], {**ROWS[10], "name": "x"}, *ROWS[11:], *ROWS[19:]],
            "resume-changed",
            "got 21: 1 with values that differ from the expected ones, 1 duplicated; the first difference is at "
            'row 10: expected {"id": "10", "name": "row 10"}, got {"id": "10", "name": "x"}',
            id="changed-and-duplicated",
        ),
    ],
)
def test_each_cause_is_named(tmp_path: Path, got: list[dict], invariant: str, detail: str) -> None:
    found = failure(tmp_path, got)
    assert found.invariant == invariant
    assert detail in found.message, found.message


def test_without_per_cause_the_invariant_is_as_given(tmp_path: Path) -> None:
    with pytest.raises(ConformanceFailure) as caught:
        same_rows(harness(tmp_path), "sink-overwrites", ROWS[16:], ROWS, "after 6 writes")
    assert caught.value.invariant == "sink-overwrites"
    assert "expected 20 rows in order, got 4: 16 missing;" in caught.value.message


def test_label_of_a_plugin_no_distribution_installed(tmp_path: Path) -> None:
    assert harness(tmp_path).plugin.label == "sink 'my_sink' (my-plugin 0.3.0)"
    assert harness(tmp_path, "(not installed)", "").plugin.label == "sink 'my_sink' (not installed)"
    assert harness(tmp_path, "", "").plugin.label == "sink 'my_sink'"
