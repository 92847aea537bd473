"""Fixtures for driving the `elspeth` command in-process against real files."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from elspeth.cli import main

INPUT_CSV = """\
id,name,region,amount
1,Ada,EU,10
2,Grace,NA,20
3,Linus,EU,oops
4,Barbara,APAC,40
"""


@pytest.fixture
def elspeth(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[..., Result]:
    """Run `elspeth ARGS...` in `tmp_path`, as a user would from that directory."""
    monkeypatch.chdir(tmp_path)

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(main, list(args))

    return invoke


@pytest.fixture
def throwaway_python(tmp_path: Path) -> Path:
    """The python of a venv in tmp_path that sees every package the python running the tests sees: what a
    test pip-installs goes into it and goes away with it, never into the environment running the tests,
    where other tests (and the user's later runs) would find it."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    # Not --system-site-packages: that is the base interpreter's, not a venv's the tests may run in. Each of
    # our site directories is added after the venv's own (addsitedir: their .pth files, editable installs
    # included, count), so what the test installs comes first.
    [own] = venv.glob("lib/python*/site-packages")
    ours = [p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()]
    (own / "_outer_environment.pth").write_text("".join(f"import site; site.addsitedir({p!r})\n" for p in ours))
    return venv / "bin" / "python"


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, str], Path]:
    """Write a dedented file under tmp_path and return its path."""

    def write_file(name: str, text: str) -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write_file


@pytest.fixture
def pipeline(write: Callable[[str, str], Path]) -> Path:
    """A small valid pipeline: csv -> route by region -> csv sinks, bad records to jsonl."""
    write("input.csv", INPUT_CSV)
    return write(
        "settings.yaml",
        """\
        source:
          plugin: csv
          options: {path: input.csv, types: {amount: int}}
          on_quarantine: rejects
        transforms:
          - name: by_region
            plugin: route
            options: {field: region, routes: {EU: europe}}
        default_sink: rest
        sinks:
          rest: {plugin: csv, options: {path: out/rest.csv, if_exists: overwrite}}
          europe: {plugin: csv, options: {path: out/europe.csv, if_exists: overwrite}}
          rejects: {plugin: jsonl, options: {path: out/rejects.jsonl, if_exists: overwrite}}
        """,
    )


@pytest.fixture
def user_error() -> Callable[..., None]:
    """Check a result is a user error: exit code 2, `Error: ...` on stderr naming every fragment, no
    traceback."""

    def check(result: Result, *fragments: str) -> None:
        assert result.exit_code == 2, result.output
        assert result.stderr.startswith("Error: "), result.stderr
        for fragment in fragments:
            assert fragment in result.stderr, f"{fragment!r} not in {result.stderr!r}"
        assert "Traceback" not in result.output

    return check
