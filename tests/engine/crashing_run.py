"""Run or resume one pipeline in a process of its own, for the tests that SIGKILL it part-way.

    python crashing_run.py SETTINGS_JSON LANDSCAPE_URL RUN_ID [--resume]

The test plugins come from sample_plugins beside this file; where they crash comes from
ELSPETH_TEST_FAULTS. Prints the run summary as JSON; exits 0 when the run completed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import sample_plugins

from elspeth.engine.orchestrator import resume_run, run_pipeline
from elspeth.plugin_manager import PluginRegistry, make_plugin_manager
from elspeth.settings import Settings, structure


def main(argv: list[str]) -> int:
    settings_file, url, run_id, *flags = argv
    settings = structure(json.loads(Path(settings_file).read_text()), Settings, where="$")
    registry = PluginRegistry(make_plugin_manager(extra_plugins=[sample_plugins]))
    if "--resume" in flags:
        summary = resume_run(run_id, settings, registry=registry, landscape_url=url)
    else:
        summary = run_pipeline(settings, registry=registry, landscape_url=url, run_id=run_id)
    print(json.dumps({"run_id": summary.run_id, "status": summary.status, "error": summary.error}))
    return 0 if summary.status == "completed" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
