"""Running the conformance kit, as a plugin author would, over sample plugins installed in a pytester
directory: the `samples` package copied in as `elspeth_samples`, a `NAME-0.1.dist-info` whose entry point
names the plugin's module, a conftest.py with its setup, and a pytest subprocess (entry points, plugin
globals and the recovery scenarios' child processes all stay out of this process)."""

from __future__ import annotations

import os
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from attrs import frozen

SAMPLES = Path(__file__).with_name("samples")
PACKAGE = "elspeth_samples"
RUN_TIMEOUT = 300
ENGINE_RAN_ONE_ROW_AT_A_TIME = "the engine ran the transform one row at a time although concurrency 8 was set"


def install(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    """Install each sample module (of `samples`) as its own distribution, as pip would."""
    package = pytester.path / PACKAGE
    if not package.exists():
        shutil.copytree(SAMPLES, package, ignore=shutil.ignore_patterns("__pycache__"))
    for module in modules:
        dist = f"elspeth_sample_{module}"
        info = pytester.path / f"{dist}-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist.replace('_', '-')}\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text(f"[elspeth.plugins]\n{module} = {PACKAGE}.{module}\n")
    # The samples first, then whatever the running tests import from (a checkout not pip-installed).
    paths = (str(pytester.path), os.environ.get("PYTHONPATH"))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in paths if p))


def write_setups(pytester: pytest.Pytester, setups: dict[str, str]) -> None:
    """A conftest.py extending `elspeth_conformance_setups` with "kind:name" -> the Python expression of its
    PluginSetup (which may use `elspeth_testkit`, and `setups`: `elspeth_samples.setups`)."""
    entries = "".join(f"        {key!r}: {expression},\n" for key, expression in setups.items())
    (pytester.path / "conftest.py").write_text(
        "import elspeth_testkit\nimport pytest\n\n"
        f"from {PACKAGE} import setups\n\n\n"
        "@pytest.fixture\n"
        "def elspeth_conformance_setups(elspeth_conformance_setups):\n"
        "    return {\n"
        "        **elspeth_conformance_setups,\n"
        f"{entries}"
        "    }\n"
    )


@frozen
class Case:
    """One collected test of the kit's run: `name` as "test_sink_multi_write[sample_append]"."""

    name: str
    outcome: str
    text: str


@frozen
class KitRun:
    result: pytest.RunResult
    cases: dict[str, Case]
    basetemp: Path

    def landscape(self, scenario: str) -> Path:
        """The Landscape file of the (one) run of `scenario` in its working directory."""
        workdirs = [p for p in self.basetemp.glob(f"{scenario[:30]}*") if not p.is_symlink()]
        assert len(workdirs) == 1, workdirs
        return workdirs[0] / "landscape.db"

    @property
    def stdout(self) -> str:
        return self.result.stdout.str()

    @property
    def tail(self) -> str:
        """The end of what the run printed, for assertion messages (stderr too: a run that could not start
        says why there)."""
        return self.stdout[-6000:] + "\n" + self.result.stderr.str()[-3000:]

    def outcomes(self, plugin: str) -> dict[str, str]:
        """Scenario name -> outcome, for the scenarios run against `plugin`."""
        suffix = f"[{plugin}]"
        return {name.removesuffix(suffix): c.outcome for name, c in self.cases.items() if name.endswith(suffix)}

    def skip_reasons(self, plugin: str) -> dict[str, str]:
        suffix = f"[{plugin}]"
        return {
            n.removesuffix(suffix): c.text
            for n, c in self.cases.items()
            if n.endswith(suffix) and c.outcome == "skipped"
        }

    def ran_rows_in_flight(self, plugin: str) -> bool:
        """Whether the concurrency scenario had rows of `plugin` in flight together. Until the engine runs a
        transform's rows concurrently, the scenario skips, saying so, after its other checks passed."""
        reason = self.skip_reasons(plugin).get("test_transform_concurrency", "")
        return ENGINE_RAN_ONE_ROW_AT_A_TIME not in reason

    def concurrency_if_run(self, plugin: str) -> set[str]:
        """The concurrency scenario, for the scenarios expected to pass, when it had rows in flight."""
        return {"test_transform_concurrency"} if self.ran_rows_in_flight(plugin) else set()

    def assert_clean(self, expected_passed: dict[str, set[str]]) -> None:
        """For each plugin, exactly the scenarios given passed, every other one skipped with a reason; the
        meta-check passed; nothing failed or errored anywhere in the run."""
        for plugin, scenarios in expected_passed.items():
            outcomes = self.outcomes(plugin)
            passed = {name for name, outcome in outcomes.items() if outcome == "passed"}
            assert passed == scenarios, (plugin, outcomes, self.tail)
            assert set(outcomes.values()) <= {"passed", "skipped"}, (plugin, outcomes, self.tail)
            assert all(reason.strip() for reason in self.skip_reasons(plugin).values())
        assert self.cases["test_conformance_suite_complete"].outcome == "passed", self.tail
        skipped = sum(case.outcome == "skipped" for case in self.cases.values())
        passed = sum(len(scenarios) for scenarios in expected_passed.values()) + 1
        self.result.assert_outcomes(passed=passed, skipped=skipped, failed=0, errors=0)

    def assert_caught(self, scenario: str, plugin: str, invariant: str, outcome: str = "failed") -> str:
        """`scenario` failed for `plugin` (or errored, if `outcome` says so: a fixture failed), and the
        failure printed in the run's output names `invariant`; returns the failure's text."""
        case = self.cases.get(f"{scenario}[{plugin}]")
        assert case is not None and case.outcome == outcome, (case, self.tail)
        assert re.search(
            rf"^E\s+\S*ConformanceFailure: \[{re.escape(invariant)}\] .*{re.escape(plugin)}.*, scenario {scenario}\b",
            self.stdout,
            re.MULTILINE,
        ), self.tail
        return case.text


def run_kit(pytester: pytest.Pytester, *plugins: str, only: str | None = None, options: tuple[str, ...] = ()) -> KitRun:
    """`pytest --elspeth-conformance --elspeth-plugin P ...` in a subprocess, with its outcomes per test;
    `only` runs just that scenario (`-k`), when the rest of the suite would prove nothing more."""
    args = [arg for plugin in plugins for arg in ("--elspeth-plugin", plugin)]
    if only is not None:
        args += ["-k", only]
    result = pytester.runpytest_subprocess(
        "--elspeth-conformance",
        *args,
        *options,
        "-p",
        "no:cacheprovider",
        "-rfEs",
        "--junitxml=junit.xml",
        timeout=RUN_TIMEOUT,
    )
    return KitRun(result, _cases(pytester.path / "junit.xml"), pytester.path / "runpytest-0")


def _cases(junit: Path) -> dict[str, Case]:
    cases: dict[str, Case] = {}
    if not junit.exists():
        return cases
    for testcase in ET.parse(junit).iter("testcase"):
        outcome, text = "passed", ""
        for child in testcase:
            if child.tag in ("failure", "error", "skipped"):
                outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[child.tag]
                text = (child.get("message") or "") + "\n" + (child.text or "")
                break
        cases[testcase.get("name", "")] = Case(testcase.get("name", ""), outcome, text)
    return cases
