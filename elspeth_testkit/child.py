"""A pipeline run in its own process, for the recovery scenarios: `python -m elspeth_testkit.child SPEC.json`.

The spec names the action (run or resume), the settings, the Landscape URL, the run id, and optionally a
kill point: the plugin (kind, name), one of its methods, the call number and whether to die before or
after that call. The process then SIGKILLs itself right there: no cleanup, no flush, nothing the plugin
or the engine could do on the way out, exactly as a crash or an OOM kill.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

from elspeth.engine import resume_run, run_pipeline
from elspeth.plugin_manager import PluginRegistry, make_plugin_manager
from elspeth.settings import Settings, structure


def _die() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def killing(cls: type, method: str, n: int, when: str) -> type:
    """A subclass of `cls` that dies at its `n`-th call of `method` (counted from 1, in whatever threads the
    engine makes them), before or after it. For `load`, `n` counts the records the source yields."""
    calls = {"count": 0}

    if method == "load":

        def load(self: Any, ctx: Any) -> Iterator[Any]:
            for item in cls.load(self, ctx):  # type: ignore[attr-defined]
                calls["count"] += 1
                if calls["count"] == n and when == "before":
                    _die()
                yield item
                if calls["count"] == n and when == "after":
                    _die()

        return type(cls.__name__, (cls,), {"load": load, "__module__": cls.__module__})

    original = getattr(cls, method)
    counting = threading.Lock()

    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        # Each call takes its number once: with rows in flight, other calls start while this one runs.
        with counting:
            calls["count"] += 1
            number = calls["count"]
        if number == n and when == "before":
            _die()
        result = original(self, *args, **kwargs)
        if number == n and when == "after":
            _die()
        return result

    return type(cls.__name__, (cls,), {method: wrapper, "__module__": cls.__module__})


def main(spec_path: str, registry: PluginRegistry | None = None) -> int:
    """Carry out the spec with `registry` (default: every installed plugin). A test whose plugins are not
    installed calls this from a script of its own with the registry it builds."""
    with open(spec_path) as fh:
        spec = json.load(fh)
    registry = registry or PluginRegistry(make_plugin_manager())
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
