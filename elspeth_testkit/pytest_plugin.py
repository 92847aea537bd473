"""The conformance kit's pytest plugin (entry point `pytest11`).

Inert unless asked: without `--elspeth-conformance` it adds options, one fixture and nothing else, and
imports nothing heavy. With it, the kit's scenario modules join the collection, parametrized by every
installed plugin of the matching kind (or those named with `--elspeth-plugin`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import pytest

# Emulated services for plugin authors' own tests and conformance setups; both modules are stdlib-light.
from elspeth_testkit.azure_openai_emulator import azure_openai_emulator
from elspeth_testkit.azurite import azurite

SUITE_VERSION = "1.3"
SCENARIO_DIR = Path(__file__).parent / "scenarios"


__all__ = ["SUITE_VERSION", "azure_openai_emulator", "azurite", "elspeth_cassette", "elspeth_conformance_setups"]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("elspeth", "Elspeth conformance kit")
    group.addoption(
        "--elspeth-conformance",
        action="store_true",
        help="run the Elspeth conformance scenarios against the installed plugins",
    )
    group.addoption(
        "--elspeth-plugin",
        action="append",
        default=[],
        metavar="NAME",
        help="only this plugin (NAME or KIND:NAME, repeatable; default: every installed plugin)",
    )
    group.addoption(
        "--elspeth-strict",
        action="store_true",
        help="a scenario skipped for a missing setup or an opt-out fails instead",
    )
    group.addoption(
        "--elspeth-record-cassettes",
        action="store_true",
        help="elspeth_cassette records against the live service instead of replaying",
    )
    group.addoption(
        "--elspeth-report",
        metavar="PATH",
        help="write a Markdown plugin x scenario matrix of the conformance run to PATH",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "elspeth_kind(kind): a conformance scenario for plugins of this kind (source, transform, ...)"
    )
    if not config.getoption("elspeth_conformance"):
        return
    from elspeth_testkit.session import ConformanceSession

    config.args.append(str(SCENARIO_DIR))
    config.pluginmanager.register(ConformanceSession(config, SUITE_VERSION), "elspeth-conformance-session")
    config.pluginmanager.import_plugin("elspeth_testkit.fixtures")


@pytest.fixture
def elspeth_conformance_setups() -> dict[str, Any]:
    """How to exercise each plugin, keyed "kind:name" (e.g. "sink:csv"), as `elspeth_testkit.PluginSetup`s.
    Override it in your conftest.py, extending what it already holds:

        @pytest.fixture
        def elspeth_conformance_setups(elspeth_conformance_setups):
            return {**elspeth_conformance_setups, "sink:my_sink": PluginSetup(...)}
    """
    from elspeth_testkit.builtin_setups import BUILTIN_SETUPS

    return dict(BUILTIN_SETUPS)


@pytest.fixture
def elspeth_cassette(request: pytest.FixtureRequest) -> Any:
    """Replay (or, with --elspeth-record-cassettes, record) the HTTP traffic of a block, secrets scrubbed:

    def test_classify(elspeth_cassette):
        with elspeth_cassette("tests/cassettes/classify.yaml", secrets=[api_key]):
            ...run the pipeline...
    """
    from elspeth.cassettes import cassette

    mode: Literal["record", "replay"] = "record" if request.config.getoption("elspeth_record_cassettes") else "replay"

    def use(path: str | Path, secrets: tuple[str, ...] | list[str] = ()) -> Any:
        return cassette(path, mode, secrets)

    return use
