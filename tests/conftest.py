"""Settings for every test of the project."""

from __future__ import annotations

import shutil
import tempfile

from hypothesis import configuration, settings

# Hypothesis keeps what it learns (examples found, constants of the code under test) in .hypothesis/ of the
# working directory: tests write only in temporary directories, so the examples that matter are pinned
# with @example, and the rest goes in a directory of this session's, removed when it ends.
_HYPOTHESIS_HOME = tempfile.mkdtemp(prefix="elspeth-hypothesis-")
configuration.set_hypothesis_home_dir(_HYPOTHESIS_HOME)
settings.register_profile("elspeth", database=None)
settings.load_profile("elspeth")


def pytest_sessionfinish() -> None:
    shutil.rmtree(_HYPOTHESIS_HOME, ignore_errors=True)
