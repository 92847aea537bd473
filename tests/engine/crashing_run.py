"""Run or resume one pipeline in a process of its own, for the tests that SIGKILL it part-way.

    python crashing_run.py SETTINGS_JSON LANDSCAPE_URL RUN_ID [--resume]

The test plugins come from sample_plugins beside this file; where they crash comes from
ELSPETH_TEST_FAULTS, and where the run is killed or signalled from ELSPETH_TEST_CRASH_AT (crash_points.py).
Prints the run summary as JSON; exits 0 when the run completed, 130 when it was interrupted, else 1.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import crash_points
import sample_plugins

from elspeth.plugin_manager import PluginRegistry, make_plugin_manager


def main(argv: list[str]) -> int:
    settings_file, url, run_id, *flags = argv
    spec = os.environ.get(crash_points.CRASH_ENV)
    strikes = crash_points.strikes_from_json(json.loads(spec)) if spec else None
    code, result, _ = crash_points.run_struck(
        json.loads(Path(settings_file).read_text()),
        url,
        run_id,
        resume="--resume" in flags,
        strikes=strikes,
        registry=PluginRegistry(make_plugin_manager(extra_plugins=[sample_plugins])),
    )
    print(json.dumps(result))
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
