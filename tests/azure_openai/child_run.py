"""`python child_run.py SPEC.json`: elspeth_testkit.child with the Azure OpenAI plugins registered as these
tests register them, for the tests that SIGKILL a run part-way.

A spec's `die_in_sdk` ({"operation": "batches.create", "when": "after"}) kills the process right before or
right after one operation of the real `openai` SDK: "after" is the moment the service has done the work and
nobody has recorded it yet, which no plugin method boundary reaches.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from elspeth_testkit.child import main
from tests.azure_openai.plugins import azure_openai_registry


def die_in_sdk(operation: str, when: str) -> None:
    from openai.resources.batches import Batches
    from openai.resources.files import Files

    resource, method = operation.split(".")
    cls = {"files": Files, "batches": Batches}[resource]
    original = getattr(cls, method)

    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        if when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        result = original(self, *args, **kwargs)
        if when == "after":
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    setattr(cls, method, wrapper)


if __name__ == "__main__":
    with open(sys.argv[1]) as fh:
        point = json.load(fh).get("die_in_sdk")
    if point:
        die_in_sdk(point["operation"], point["when"])
    sys.exit(main(sys.argv[1], azure_openai_registry()))
