"""The conformance kit's scenarios over the Azure OpenAI plugins, with the setups of
conformance/setups_azure_openai.py, run here without `--elspeth-conformance` so a broken setup shows up in
the ordinary test run. The recovery scenarios are left to the conformance run: their child process finds
plugins through the installed entry points only."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from elspeth_testkit.azure_openai_emulator import AzureOpenAIEmulator
from elspeth_testkit.harness import Harness, PluginUnderTest
from elspeth_testkit.scenarios import test_aggregates as aggregate_scenarios
from elspeth_testkit.scenarios import test_transforms as transform_scenarios

_SETUPS = Path(__file__).parents[2] / "conformance" / "setups_azure_openai.py"
_spec = importlib.util.spec_from_file_location("setups_azure_openai", _SETUPS)
assert _spec is not None and _spec.loader is not None
setups_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(setups_module)

SCENARIOS = (
    [
        ("transform", "azure_llm", transform_scenarios, name)
        for name in ("contract", "empty_input", "call_linkage", "sdk_failure", "audit_refused", "secrets")
    ]
    + [
        ("transform", "azure_multi_query_llm", transform_scenarios, name)
        for name in ("contract", "call_linkage", "sdk_failure", "audit_refused", "secrets")
    ]
    + [
        (kind_name[0], kind_name[1], aggregate_scenarios, name)
        for kind_name in (("aggregate", "azure_multi_query_llm"), ("aggregate", "azure_batch_llm"))
        for name in (
            "contract",
            "empty_input",
            "batch_state",
            "call_linkage",
            "sdk_failure",
            "audit_refused",
            "secrets",
        )
    ]
)


@pytest.fixture(scope="module")
def any_key_emulator():
    """As the kit's `azure_openai_emulator`: any key passes."""
    with AzureOpenAIEmulator() as emulator:
        yield emulator


@pytest.mark.parametrize(
    ("kind", "name", "module", "scenario"), SCENARIOS, ids=[f"{s[3]}[{s[0]}:{s[1]}]" for s in SCENARIOS]
)
def test_kit_scenario(kind, name, module, scenario, registry, any_key_emulator, tmp_path):
    setup = setups_module.azure_openai_setups(any_key_emulator)[f"{kind}:{name}"]
    function = f"test_{kind}_{scenario}"
    h = Harness(PluginUnderTest(registry.get(kind, name), setup), function, tmp_path, registry)
    getattr(module, function)(h, None)
