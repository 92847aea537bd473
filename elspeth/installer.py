"""`elspeth install` / `elspeth uninstall`: pip, run by the very Python that runs elspeth (as `llm install`
does), so a plugin lands where `elspeth plugins` looks for it whatever environment elspeth lives in."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from collections.abc import Sequence

from elspeth.errors import ElspethError
from elspeth.plugin_manager import PluginInfo

Listed = tuple[str, str, str, str, str]
"""(name, kind, distribution, version, hook): a row of `elspeth plugins`."""
LISTED_KEYS = ("name", "kind", "distribution", "version", "hook")


def pip_command(action: str, args: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "pip", action, *args]


def run_pip(action: str, args: Sequence[str]) -> None:
    """Run pip with its output going straight to the terminal; a failure is an ElspethError."""
    if importlib.util.find_spec("pip") is None:
        raise ElspethError(
            f"pip is not installed in the environment running elspeth ({sys.executable}); "
            f"add it with: {sys.executable} -m ensurepip"
        )
    returncode = subprocess.call(pip_command(action, args))
    if returncode != 0:
        raise ElspethError(f"pip {action} failed (exit code {returncode}); its messages are above")


def refuse_uninstalling_elspeth(args: Sequence[str]) -> None:
    for arg in args:
        if not arg.startswith("-") and re.sub(r"[-_.]+", "-", arg).lower() == "elspeth":
            raise ElspethError(
                "elspeth uninstall removes plugins, not elspeth itself (that would remove this command); "
                f"use: {sys.executable} -m pip uninstall elspeth"
            )


def listed(info: PluginInfo) -> Listed:
    return (info.name, info.kind, info.distribution, info.version, info.hook)


def installed_plugins() -> tuple[list[Listed], str | None]:
    """What `elspeth plugins` lists in a fresh interpreter (pip's changes, editable installs' .pth files in
    particular, take effect only in a new one), or no rows and the reason it cannot load them."""
    proc = subprocess.run(
        [sys.executable, "-m", "elspeth", "plugins", "--json"], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        last = proc.stderr.strip().splitlines()[-1:] or [f"exit code {proc.returncode}"]
        return [], last[0].removeprefix("Error: ")
    return [tuple(p[k] for k in LISTED_KEYS) for p in json.loads(proc.stdout)], None  # type: ignore[misc]


def plugins_after_pip() -> list[Listed]:
    found, problem = installed_plugins()
    if problem is not None:
        raise ElspethError(
            f"pip succeeded, but elspeth can no longer load its plugins: {problem}; "
            "`elspeth uninstall DISTRIBUTION` removes the one at fault"
        )
    return found
