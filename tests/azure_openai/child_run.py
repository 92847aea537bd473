"""Run or resume one pipeline in a process of its own, for the tests that SIGKILL it part-way.

    python child_run.py SPEC.json

The spec holds the action (run or resume), the settings, the Landscape URL, the run id and optionally a
kill point as elspeth_testkit.child takes it. Prints the run summary as JSON; exits 0 when it completed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from elspeth.engine.orchestrator import resume_run, run_pipeline
from elspeth.settings import Settings, structure
from elspeth_testkit.child import killing
from tests.azure_openai.plugins import azure_openai_registry


def main(spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    registry = azure_openai_registry()
    kill = spec.get("kill")
    if kill:
        info = registry.get(kill["kind"], kill["name"])
        registry = registry.with_class(
            kill["kind"], kill["name"], killing(info.cls, kill["method"], kill["n"], kill.get("when", "after"))
        )
    settings = structure(spec["settings"], Settings, where="child pipeline")
    if spec["action"] == "run":
        summary = run_pipeline(settings, registry=registry, landscape_url=spec["url"], run_id=spec["run_id"])
    else:
        summary = resume_run(spec["run_id"], settings, registry=registry, landscape_url=spec["url"])
    print(json.dumps({"status": summary.status, "error": summary.error}))
    return 0 if summary.status == "completed" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
