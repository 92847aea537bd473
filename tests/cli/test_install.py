"""`elspeth install` / `elspeth uninstall`: pip run by the Python that runs elspeth, every argument passed
through, and the plugins that came or went listed afterwards."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from elspeth import installer

HTTP = ("http_enrich", "transform", "elspeth-http", "0.1.0", "register_transforms")


BUILTIN = [("csv", "sink", "elspeth", "0.1.0", "register_sinks")]


@pytest.fixture
def pip_calls(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """pip's command lines, not run. Before it the csv sink is installed; after it, elspeth-http's
    transform too."""
    calls: list[list[str]] = []

    def call(command: list[str]) -> int:
        calls.append(command)
        return 0

    monkeypatch.setattr(installer.subprocess, "call", call)
    monkeypatch.setattr(installer, "installed_plugins", lambda: (BUILTIN, None))
    monkeypatch.setattr(installer, "plugins_after_pip", lambda: [*BUILTIN, HTTP])
    return calls


def test_install_runs_pip_of_this_python_passing_every_argument(
    elspeth: Callable[..., Result], pip_calls: list[list[str]]
) -> None:
    result = elspeth("install", "-e", "contrib/elspeth-http", "--upgrade", "--no-deps", "other>=1.0")
    assert result.exit_code == 0, result.output
    assert pip_calls == [
        [sys.executable, "-m", "pip", "install", "-e", "contrib/elspeth-http", "--upgrade", "--no-deps", "other>=1.0"]
    ]
    assert result.output.splitlines()[1:] == [
        "Plugins added or changed:",
        "NAME         KIND       DISTRIBUTION  VERSION  HOOK",
        "http_enrich  transform  elspeth-http  0.1.0    register_transforms",
    ]


def test_install_says_when_nothing_new_registers(
    elspeth: Callable[..., Result], monkeypatch: pytest.MonkeyPatch, pip_calls: list[list[str]]
) -> None:
    monkeypatch.setattr(installer, "plugins_after_pip", lambda: BUILTIN)
    result = elspeth("install", "requests")
    assert result.exit_code == 0, result.output
    assert "No new plugins" in result.output


def test_uninstall_passes_yes_to_pip_and_lists_what_went(
    elspeth: Callable[..., Result], monkeypatch: pytest.MonkeyPatch, pip_calls: list[list[str]]
) -> None:
    monkeypatch.setattr(installer, "installed_plugins", lambda: ([*BUILTIN, HTTP], None))
    monkeypatch.setattr(installer, "plugins_after_pip", lambda: BUILTIN)
    result = elspeth("uninstall", "elspeth-http", "-y")
    assert result.exit_code == 0, result.output
    assert pip_calls == [[sys.executable, "-m", "pip", "uninstall", "elspeth-http", "--yes"]]
    assert "Plugins removed:" in result.output and "http_enrich  transform  elspeth-http" in result.output


@pytest.mark.parametrize("name", ["elspeth", "Elspeth", "ELSPETH"])
def test_uninstall_refuses_to_remove_elspeth_itself(
    elspeth: Callable[..., Result], user_error: Any, pip_calls: list[list[str]], name: str
) -> None:
    user_error(elspeth("uninstall", name, "-y"), "removes plugins, not elspeth itself", "-m pip uninstall elspeth")
    assert pip_calls == []


def test_a_failing_pip_is_a_one_line_error(elspeth: Callable[..., Result], user_error: Any, monkeypatch) -> None:
    monkeypatch.setattr(installer.subprocess, "call", lambda command: 1)
    user_error(elspeth("install", "no-such-package"), "pip install failed (exit code 1); its messages are above")


def test_a_package_is_required(elspeth: Callable[..., Result]) -> None:
    for command in ("install", "uninstall"):
        result = elspeth(command)
        assert result.exit_code == 2 and "Missing argument" in result.output


def test_a_plugin_that_no_longer_loads_after_install_is_reported(
    elspeth: Callable[..., Result], user_error: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        stderr = "Error: plugin entry point 'bad' of distribution 'elspeth-bad' failed to import: boom\n"
        return subprocess.CompletedProcess(args, 2, "", stderr)

    monkeypatch.setattr(installer.subprocess, "call", lambda command: 0)
    monkeypatch.setattr(installer.subprocess, "run", broken)
    user_error(
        elspeth("install", "elspeth-bad"),
        "pip succeeded, but elspeth can no longer load its plugins: plugin entry point 'bad' of distribution "
        "'elspeth-bad' failed to import: boom",
        "elspeth uninstall",
    )


def _listed_by(python: Path) -> set[tuple[str, str, str]]:
    proc = subprocess.run([python, "-m", "elspeth", "plugins", "--json"], capture_output=True, text=True, check=True)
    return {(p["kind"], p["name"], p["distribution"]) for p in json.loads(proc.stdout)}


def test_install_and_uninstall_for_real(elspeth: Callable[..., Result], tmp_path: Path, throwaway_python: Path) -> None:
    """A scaffolded plugin, pip-installed (-e) by `elspeth install` run by a venv's python, is what `elspeth
    plugins` lists afterwards; `elspeth uninstall -y` takes it away again. The venv goes with tmp_path."""
    assert elspeth("plugins", "new", "install_probe", "--kind", "transform").exit_code == 0
    probe = ("transform", "install_probe", "elspeth-install-probe")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([throwaway_python, "-m", "elspeth", *args], capture_output=True, text=True, cwd=tmp_path)

    installed = run("install", "--no-deps", "-e", "elspeth-install-probe")
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert "Plugins added or changed:" in installed.stdout
    assert "install_probe  transform  elspeth-install-probe  0.1.0" in installed.stdout
    assert probe in _listed_by(throwaway_python)
    assert probe not in _listed_by(Path(sys.executable)), "installed into the venv only"
    removed = run("uninstall", "elspeth-install-probe", "-y")
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert "Plugins removed:" in removed.stdout and "install_probe" in removed.stdout
    assert probe not in _listed_by(throwaway_python)
