"""Issue 12's acceptance test, kept true: the package docs/writing-plugins.md builds from its own snippets
(each whose first line is `# FILE`), a transform calling a JSON API through `elspeth.retries` and a sink
writing CSV with `elspeth.formats`, installs into a throwaway venv, passes `mypy --strict` without a
`type: ignore`, passes the conformance kit under `--elspeth-strict`, and runs the page's pipeline."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import re
import subprocess
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from types import ModuleType

import pytest

from elspeth_testkit.sweep import assert_clean

ELSPETH_ROOT = Path(__file__).resolve().parents[2]
DOC = ELSPETH_ROOT / "docs" / "writing-plugins.md"
SNIPPET = re.compile(r"^```(?:python|toml|yaml)\n(# (\S+)\n.*?)^```$", re.MULTILINE | re.DOTALL)
EXAMPLE_FILES = {
    "pyproject.toml",
    "conftest.py",
    "settings.yaml",
    "elspeth_my_plugins/plugin.py",
    "elspeth_my_plugins/my_api.py",
    "elspeth_my_plugins/my_sink.py",
}
MUST_PASS = [
    f"test_{kind}_{scenario}[{name}]"
    for kind, name, scenarios in [
        (
            "transform",
            "my_api",
            ["contract", "empty_input", "call_linkage", "sdk_failure", "audit_refused", "recovery"],
        ),
        ("sink", "my_sink", ["contract", "empty_input", "multi_write", "recovery_mid_write", "recovery_after_flush"]),
    ]
    for scenario in scenarios
]


def example_files() -> dict[str, str]:
    return {path: text for text, path in SNIPPET.findall(DOC.read_text(encoding="utf-8"))}


@pytest.fixture
def package(tmp_path: Path, throwaway_python: Path) -> Path:
    """The example package written from the page, pip-installed (-e) into the throwaway venv."""
    files = example_files()
    assert set(files) == EXAMPLE_FILES, "docs/writing-plugins.md: the example's files changed; update this test"
    root = tmp_path / "elspeth-my-plugins"
    for name, text in {**files, "elspeth_my_plugins/__init__.py": ""}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    install = [throwaway_python, "-m", "pip", "install", "--no-deps", "-e", str(root)]
    proc = subprocess.run(install, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return root


def clean_env(**extra: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "ELSPETH_LOAD"))}, **extra}


def test_the_example_type_checks_passes_the_kit_under_strict_and_runs(
    package: Path, throwaway_python: Path, word_count: str
) -> None:
    """One venv and one install for the three checks: building them is most of the time this takes."""
    pytest.importorskip("mypy")  # a dev tool: absent where scripts/check-lowest-versions runs the core tests
    type_checks(package, throwaway_python)
    passes_the_kit(package, throwaway_python)
    runs_with_a_clean_landscape(package, throwaway_python, word_count)


def type_checks(package: Path, python: Path) -> None:
    assert not [name for name, text in example_files().items() if "type: ignore" in text]
    proc = subprocess.run(
        [python, "-m", "mypy", "--strict", "--cache-dir", str(package.parent / "mypy-cache"), "."],
        cwd=package,
        capture_output=True,
        text=True,
        env=clean_env(),
    )
    assert proc.returncode == 0, "mypy --strict:\n" + proc.stdout + proc.stderr


def passes_the_kit(package: Path, python: Path) -> None:
    command = [
        python,
        "-m",
        "pytest",
        "--elspeth-conformance",
        "--elspeth-strict",
        "--elspeth-plugin",
        "transform:my_api",
        "--elspeth-plugin",
        "sink:my_sink",
        "-p",
        "no:cacheprovider",
        "-q",
        "-rA",
        "--basetemp",
        str(package.parent / "kit"),
    ]
    proc = subprocess.run(command, cwd=package, capture_output=True, text=True, env=clean_env(), timeout=600)
    assert proc.returncode == 0, "the kit:\n" + proc.stdout[-6000:] + proc.stderr[-2000:]
    passed = {line.split("::")[-1] for line in proc.stdout.splitlines() if line.startswith("PASSED")}
    assert [test for test in MUST_PASS if test not in passed] == [], proc.stdout


def runs_with_a_clean_landscape(package: Path, python: Path, api_url: str) -> None:
    (package / "input.csv").write_text("id,text\n1,hello world\n2,\n3,one two three\n", encoding="utf-8")
    landscape = f"sqlite:///{package.parent / 'landscape.db'}"

    def elspeth(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [python, "-m", "elspeth", *args],
            cwd=package,
            capture_output=True,
            text=True,
            env=clean_env(MY_API_URL=api_url),
        )

    validated = elspeth("validate", "settings.yaml")
    assert validated.returncode == 0, validated.stdout + validated.stderr
    run = elspeth("run", "settings.yaml", "--landscape", landscape, "--run-id", "doc-example", "-q")
    assert run.returncode == 0, run.stdout + run.stderr
    with (package / "output" / "answers.csv").open(newline="", encoding="utf-8") as f:
        answers = [(row["id"], json.loads(row["answer"])["words"]) for row in csv.DictReader(f)]
    assert answers == [("1", 2), ("2", 0), ("3", 3)]
    assert_clean(landscape, "doc-example")


def load_conftest(package: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("writing_plugins_example_conftest", package / "conftest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def word_count(package: Path) -> Iterator[str]:
    """The page's test server, serving the pipeline run outside pytest's session fixtures."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), load_conftest(package).WordCount)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
