"""One conformance run: which plugins are under test, how each scenario is parametrized over them, what
the meta-check expects, and the report matrix."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from elspeth.plugin_manager import PluginInfo, PluginRegistry, make_plugin_manager
from elspeth_testkit.report import write_report

STANDARD_SCENARIOS: dict[str, tuple[str, ...]] = {
    "source": (
        "test_source_contract",
        "test_source_empty_input",
        "test_source_round_trip",
        "test_source_quarantine",
        "test_source_call_linkage",
        "test_source_sdk_failure",
        "test_source_audit_refused",
        "test_source_recovery",
        "test_source_secrets",
    ),
    "transform": (
        "test_transform_contract",
        "test_transform_empty_input",
        "test_transform_deterministic",
        "test_transform_call_linkage",
        "test_transform_sdk_failure",
        "test_transform_concurrency",
        "test_transform_audit_refused",
        "test_transform_recovery",
        "test_transform_secrets",
    ),
    "aggregate": (
        "test_aggregate_contract",
        "test_aggregate_empty_input",
        "test_aggregate_batch_state",
        "test_aggregate_cardinality",
        "test_aggregate_call_linkage",
        "test_aggregate_sdk_failure",
        "test_aggregate_audit_refused",
        "test_aggregate_recovery_half_full_buffer",
        "test_aggregate_recovery_pending",
        "test_aggregate_secrets",
    ),
    "sink": (
        "test_sink_contract",
        "test_sink_empty_input",
        "test_sink_multi_write",
        "test_sink_read_back",
        "test_sink_call_linkage",
        "test_sink_sdk_failure",
        "test_sink_audit_refused",
        "test_sink_recovery_mid_write",
        "test_sink_recovery_after_flush",
        "test_sink_secrets",
    ),
}
"""The suite, versioned with SUITE_VERSION: the meta-check fails when one of these is not collected for a
plugin of its kind (deleted, renamed or deselected by a hook) unless it is marked xfail with a reason."""


class ConformanceSession:
    def __init__(self, config: pytest.Config, suite_version: str) -> None:
        self.config = config
        self.suite_version = suite_version
        self.strict = bool(config.getoption("elspeth_strict"))
        self.plugins = self._discover(config.getoption("elspeth_plugin"))
        self.results: dict[tuple[str, str], tuple[str, str]] = {}
        self.missing: list[str] = []

    @staticmethod
    def _discover(wanted: list[str]) -> list[PluginInfo]:
        registry = PluginRegistry(make_plugin_manager())
        found = registry.all()
        if not wanted:
            return found
        chosen = [p for p in found if p.name in wanted or f"{p.kind}:{p.name}" in wanted]
        unknown = [w for w in wanted if not any(w in (p.name, f"{p.kind}:{p.name}") for p in found)]
        if unknown:
            installed = ", ".join(f"{p.kind}:{p.name}" for p in found)
            raise pytest.UsageError(f"--elspeth-plugin {', '.join(unknown)}: not installed (installed: {installed})")
        return chosen

    def pytest_report_header(self, config: pytest.Config) -> list[str]:
        lines = [f"elspeth conformance suite {self.suite_version}, plugins under test:"]
        lines += [f"  {p.kind:<9} {p.name:<24} {p.distribution} {p.version}".rstrip() for p in self.plugins]
        if self.strict:
            lines.append("  strict: skips for a missing setup or an opt-out fail")
        return lines

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "plugin_info" not in metafunc.fixturenames:
            return
        marker = metafunc.definition.get_closest_marker("elspeth_kind")
        kind = marker.args[0] if marker else None
        plugins = [p for p in self.plugins if p.kind == kind]
        metafunc.parametrize(
            "plugin_info",
            plugins or [pytest.param(None, marks=pytest.mark.skip(reason=f"no {kind} plugin under test"))],
            ids=[p.name for p in plugins] or ["none"],
        )

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        collected = defaultdict(set)
        for item in items:
            callspec = getattr(item, "callspec", None)
            info = callspec and callspec.params.get("plugin_info")
            if not isinstance(info, PluginInfo):
                continue
            xfail = item.get_closest_marker("xfail")
            if xfail is not None and not (xfail.kwargs.get("reason") or "").strip():
                continue
            collected[(info.kind, info.name)].add(item.originalname)  # type: ignore[attr-defined]
        for plugin in self.plugins:
            for scenario in STANDARD_SCENARIOS[plugin.kind]:
                if scenario not in collected[(plugin.kind, plugin.name)]:
                    self.missing.append(f"{scenario}[{plugin.name}]")

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if "[" not in report.nodeid or not report.nodeid.split("::")[-1].startswith("test_"):
            return
        name, _, param = report.nodeid.split("::")[-1].partition("[")
        kind = name.split("_")[1]
        if kind not in STANDARD_SCENARIOS:
            return
        key = (f"{kind}:{param.rstrip(']')}", name)
        if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
            reason = ""
            if report.skipped and isinstance(report.longrepr, tuple):
                reason = str(report.longrepr[2]).removeprefix("Skipped: ")
            elif report.failed:
                crash = getattr(report.longrepr, "reprcrash", None)
                reason = str(crash and crash.message)
            self.results[key] = (report.outcome, reason)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        path = self.config.getoption("elspeth_report")
        # Under pytest-xdist the controller hears every report; a worker's partial view is not written.
        if path and not hasattr(self.config, "workerinput"):
            write_report(Path(path), self.suite_version, self.plugins, self.results, STANDARD_SCENARIOS)


def session_of(config: pytest.Config) -> ConformanceSession:
    plugin: Any = config.pluginmanager.get_plugin("elspeth-conformance-session")
    return plugin  # type: ignore[no-any-return]
