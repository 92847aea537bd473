"""`elspeth plugins new`: what it writes, the names and directories it refuses, and the promise that a plugin
of every kind, as generated, installs with pip and passes the conformance suite (strict)."""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from click.testing import Result

from elspeth.scaffold import KINDS

ELSPETH_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("kind", KINDS)
def test_new_writes_a_package_with_its_entry_point(elspeth: Callable[..., Result], tmp_path: Path, kind: str) -> None:
    result = elspeth("plugins", "new", "order_check", "--kind", kind)
    assert result.exit_code == 0, result.output
    root = tmp_path / "elspeth-order-check"
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert files == [
        ".github/workflows/tests.yml",
        ".gitignore",
        "README.md",
        "conftest.py",
        "elspeth_order_check/__init__.py",
        "elspeth_order_check/plugin.py",
        "pyproject.toml",
        "tests/test_order_check.py",
    ]
    pyproject = tomllib.loads((root / "pyproject.toml").read_text())
    assert pyproject["project"]["name"] == "elspeth-order-check"
    assert pyproject["project"]["entry-points"]["elspeth.plugins"] == {"order_check": "elspeth_order_check.plugin"}
    assert pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"] == ["elspeth_order_check"]
    plugin = (root / "elspeth_order_check" / "plugin.py").read_text()
    ast.parse(plugin)
    assert f"class OrderCheck{kind.capitalize()}(" in plugin
    assert 'name = "order_check"' in plugin
    assert f"def register_{kind}s(register: Register)" in plugin
    for python in ("conftest.py", "tests/test_order_check.py"):
        ast.parse((root / python).read_text())
    assert f"--elspeth-plugin {kind}:order_check" in (root / ".github/workflows/tests.yml").read_text()
    assert "Next:\n  cd elspeth-order-check\n  elspeth install -e .\n" in result.output


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff is not installed")
def test_the_generated_code_is_ruff_clean(elspeth: Callable[..., Result], tmp_path: Path) -> None:
    for kind in KINDS:
        assert elspeth("plugins", "new", f"clean_{kind}", "--kind", kind).exit_code == 0
        where = tmp_path / f"elspeth-clean-{kind}"
        for command in (["ruff", "check", "."], ["ruff", "format", "--check", "."]):
            proc = subprocess.run(command, cwd=where, capture_output=True, text=True)
            assert proc.returncode == 0, f"{kind}: {' '.join(command)}\n{proc.stdout}{proc.stderr}"


def test_dir_names_where_the_package_goes(elspeth: Callable[..., Result], tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert elspeth("plugins", "new", "a", "--kind", "sink", "--dir", "empty").exit_code == 0
    assert (tmp_path / "empty" / "elspeth_a" / "plugin.py").is_file()
    assert elspeth("plugins", "new", "b", "--kind", "sink", "--dir", "deep/er").exit_code == 0
    assert (tmp_path / "deep" / "er" / "pyproject.toml").is_file()


@pytest.mark.parametrize("name", ["my-sink", "1st", "_private", "two words", "ünïcode", "a.b"])
def test_a_name_that_is_no_identifier_is_refused(elspeth, user_error, tmp_path: Path, name: str) -> None:
    user_error(elspeth("plugins", "new", name, "--kind", "sink"), f"plugin name {name!r} is not a Python identifier")
    assert list(tmp_path.iterdir()) == []


def test_a_non_empty_directory_is_refused_and_left_alone(elspeth, user_error, tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    user_error(
        elspeth("plugins", "new", "x", "--kind", "source", "--dir", "taken"),
        "taken already exists and is not empty",
        "nothing was written",
    )
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["notes.txt"]
    (tmp_path / "file").write_text("")
    result = elspeth("plugins", "new", "x", "--kind", "source", "--dir", "file")
    assert result.exit_code == 2 and "Directory 'file' is a file" in result.stderr


def test_the_name_of_an_installed_plugin_of_that_kind_is_refused(elspeth, user_error) -> None:
    user_error(
        elspeth("plugins", "new", "csv", "--kind", "sink"),
        "a sink plugin named 'csv' is already installed (from distribution 'elspeth')",
    )
    assert elspeth("plugins", "new", "csv", "--kind", "transform").exit_code == 0


def test_kind_is_required_and_checked(elspeth) -> None:
    result = elspeth("plugins", "new", "x")
    assert result.exit_code == 2 and "Missing option '--kind'" in result.output
    result = elspeth("plugins", "new", "x", "--kind", "filter")
    assert result.exit_code == 2 and "'filter' is not one of" in result.output


def test_plugins_without_a_subcommand_still_lists(elspeth) -> None:
    result = elspeth("plugins")
    assert result.exit_code == 0 and result.output.startswith("NAME")
    assert "new" in elspeth("plugins", "--help").output


# ---------------------------------------------------------------- as generated, installed, conformant

E2E_NAMES = {kind: f"scaffolded_{kind}" for kind in KINDS}
"""One name per kind, installed into a venv of the test's own."""
SCENARIOS_THAT_MUST_PASS = {
    "source": ("contract", "empty_input", "round_trip", "quarantine", "recovery"),
    "transform": ("contract", "empty_input", "deterministic", "recovery"),
    "aggregate": ("contract", "empty_input", "batch_state", "recovery_half_full_buffer"),
    "sink": ("contract", "empty_input", "multi_write", "recovery_mid_write", "recovery_after_flush"),
}


@pytest.fixture
def scaffolded(elspeth: Callable[..., Result], tmp_path: Path, throwaway_python: Path) -> dict[str, Path]:
    """A plugin of every kind made by `elspeth plugins new`, each pip-installed (-e) into a throwaway venv."""
    dirs = {}
    for kind, name in E2E_NAMES.items():
        result = elspeth("plugins", "new", name, "--kind", kind, "--dir", f"{kind}-plugin")
        assert result.exit_code == 0, result.output
        dirs[kind] = tmp_path / f"{kind}-plugin"

    def install(directory: Path) -> subprocess.CompletedProcess[str]:
        command = [throwaway_python, "-m", "pip", "install", "--no-deps", "-e", str(directory)]
        return subprocess.run(command, capture_output=True, text=True)

    # One pip per package, side by side: each builds in its own isolated environment, which is the slow part.
    with ThreadPoolExecutor(len(dirs)) as pool:
        installs = list(pool.map(install, dirs.values()))
    for proc in installs:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return dirs


def test_a_plugin_of_every_kind_passes_the_conformance_suite_as_generated(
    scaffolded: dict[str, Path], tmp_path: Path, throwaway_python: Path
) -> None:
    listing = subprocess.run(
        [throwaway_python, "-m", "elspeth", "plugins", "--json"], capture_output=True, text=True, check=True
    ).stdout
    listed = {(p["kind"], p["name"]): p["distribution"] for p in json.loads(listing)}
    for kind, name in E2E_NAMES.items():
        assert listed[(kind, name)] == f"elspeth-{name.replace('_', '-')}"

    def conformance(kind: str) -> subprocess.CompletedProcess[str]:
        command = [
            str(throwaway_python),
            "-m",
            "pytest",
            "--elspeth-conformance",
            "--elspeth-strict",
            "--elspeth-plugin",
            f"{kind}:{E2E_NAMES[kind]}",
            "-p",
            "no:cacheprovider",
            "-q",
            "-rA",
            "--basetemp",
            str(tmp_path / f"pytest-{kind}"),
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "ELSPETH_LOAD"))}
        return subprocess.run(command, cwd=scaffolded[kind], capture_output=True, text=True, env=env, timeout=600)

    with ThreadPoolExecutor(len(KINDS)) as pool:
        runs = dict(zip(KINDS, pool.map(conformance, KINDS), strict=True))
    for kind, proc in runs.items():
        name = E2E_NAMES[kind]
        assert proc.returncode == 0, f"{kind}:\n{proc.stdout[-6000:]}{proc.stderr[-2000:]}"
        assert f"PASSED tests/test_{name}.py::" in proc.stdout, proc.stdout
        for scenario in SCENARIOS_THAT_MUST_PASS[kind]:
            assert f"::test_{kind}_{scenario}[{name}]" in _passed(proc.stdout), f"{kind}: {scenario}\n{proc.stdout}"


def _passed(output: str) -> str:
    return "\n".join(line for line in output.splitlines() if line.startswith("PASSED"))


def test_the_templates_and_the_typed_markers_ship_in_the_wheel(tmp_path: Path) -> None:
    """The scaffold reads its templates as package data: they must be in the built wheel. So must the
    py.typed markers, without which mypy reads no annotation of elspeth in a plugin package (PEP 561)."""
    # Building in pip's isolated environment fetches hatchling; skip that when it is here already.
    isolation = [] if importlib.util.find_spec("hatchling") is None else ["--no-build-isolation"]
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, "-w", str(tmp_path), "."],
        cwd=ELSPETH_ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [wheel] = tmp_path.glob("elspeth-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    templates = ELSPETH_ROOT / "elspeth" / "scaffold_templates"
    expected = {f"elspeth/scaffold_templates/{p.relative_to(templates)}" for p in templates.rglob("*.tmpl")}
    assert len(expected) == len(KINDS) * 4 + 5
    assert expected <= names
    assert {"elspeth/py.typed", "elspeth_testkit/py.typed"} <= names
