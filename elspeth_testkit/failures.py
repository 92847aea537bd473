"""Failures a plugin author can act on: the invariant broken, the plugin, the scenario, and the Landscape
rows that show it, never a bare assert."""

from __future__ import annotations

from typing import Any

from elspeth_testkit.sweep import format_rows


class ConformanceFailure(AssertionError):
    def __init__(
        self,
        invariant: str,
        plugin: str,
        scenario: str,
        message: str,
        rows: list[dict[str, Any]],
        rows_title: str = "the Landscape rows that show it",
    ) -> None:
        self.invariant = invariant
        self.plugin = plugin
        self.scenario = scenario
        self.message = message
        self.rows = rows
        text = f"[{invariant}] {plugin}, scenario {scenario}:\n  {message}"
        if rows:
            text += f"\n  {rows_title}:\n" + format_rows(rows)
        super().__init__(text)
