"""The meta-check: every standard scenario was collected for every plugin under test."""

from __future__ import annotations

import pytest

from elspeth_testkit.session import session_of


def test_conformance_suite_complete(request: pytest.FixtureRequest) -> None:
    """Fails when a standard scenario was deleted, renamed or deselected by a hook, or marked xfail without a
    written reason: a plugin cannot pass the suite by quietly running less of it."""
    session = session_of(request.config)
    if session.missing:
        pytest.fail(
            "standard scenarios not run: " + ", ".join(session.missing) + "; opt out of a scenario in the "
            "plugin's setup (PluginSetup.opt_out) with a written reason instead",
            pytrace=False,
        )
