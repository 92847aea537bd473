"""`python blob_child.py SPEC.json`: elspeth_testkit.child with the Blob plugins registered as the tests
register them (the `azure` entry point may not be installed), SIGKILLing itself at the spec's kill point."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from blob_world import blob_registry  # beside this file

from elspeth.engine.orchestrator import resume_run, run_pipeline
from elspeth.settings import Settings, structure
from elspeth_testkit.child import killing


def main(spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    registry = blob_registry()
    kill = spec.get("kill")
    if kill:
        info = registry.get(kill["kind"], kill["name"])
        killer = killing(info.cls, kill["method"], kill["n"], kill.get("when", "after"))
        registry = registry.with_class(kill["kind"], kill["name"], killer)
    settings = structure(spec["settings"], Settings, where="child pipeline")
    if spec["action"] == "run":
        summary = run_pipeline(settings, registry=registry, landscape_url=spec["url"], run_id=spec["run_id"])
    else:
        summary = resume_run(spec["run_id"], settings, registry=registry, landscape_url=spec["url"])
    print(json.dumps({"status": summary.status, "error": summary.error}))
    return 0 if summary.status == "completed" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
