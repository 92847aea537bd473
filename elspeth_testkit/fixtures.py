"""Fixtures of the conformance scenarios (registered only with --elspeth-conformance)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from elspeth.plugin_manager import PluginInfo
from elspeth_testkit.harness import Harness, PluginUnderTest
from elspeth_testkit.setups import PluginSetup, key


@pytest.fixture
def plugin_under_test(plugin_info: PluginInfo, elspeth_conformance_setups: dict[str, Any]) -> PluginUnderTest:
    setup = elspeth_conformance_setups.get(key(plugin_info.kind, plugin_info.name))
    return PluginUnderTest(plugin_info, setup or PluginSetup(), configured=setup is not None)


@pytest.fixture
def h(plugin_under_test: PluginUnderTest, request: pytest.FixtureRequest, tmp_path: Path) -> Harness:
    """The scenario's harness: the plugin, a working directory, a fresh Landscape."""
    harness = Harness(
        plugin_under_test,
        request.node.originalname,
        tmp_path,
        strict=bool(request.config.getoption("elspeth_strict")),
    )
    harness.check_opt_out()
    return harness
