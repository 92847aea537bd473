"""Conformance setups of the Azure OpenAI plugins: each talks to the testkit's Azure OpenAI emulator, through
the kit's fault proxy (the `endpoint` the kit passes), with the SDK's retries off and short timeouts so the
kit's faults (a 1.5 s timeout among them) are each one ERROR call and then a retry by the plugin.

    @pytest.fixture
    def elspeth_conformance_setups(elspeth_conformance_setups, azure_openai_emulator):
        return {**elspeth_conformance_setups, **azure_openai_setups(azure_openai_emulator)}
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from elspeth_testkit.azure_openai_emulator import AzureOpenAIEmulator
from elspeth_testkit.setups import Options, PluginSetup, Service

API_KEY = "conformance-azure-openai-key-5c1f9e"
"""Any key passes the emulator; this one is unique, for the secrets scenario to look for."""
PROMPT = "Classify this record. Labels: alpha, beta, gamma\nRecord: {{ name }} of group {{ group }}"
QUERIES = {
    "category": PROMPT,
    "summary": "Summarize in a few words: {{ name }} ({{ amount }})",
}


def _options(emulator: AzureOpenAIEmulator, **extra: Any) -> Callable[[Path, str | None], Options]:
    def options(workdir: Path, endpoint: str | None) -> Options:
        return {
            # Scenarios that do not watch the wire give no endpoint: then straight to the emulator.
            "endpoint": endpoint or emulator.url,
            "deployment": "gpt-4o-mini",
            "api_key": API_KEY,
            "timeout_seconds": 0.5,
            "max_attempts": 2,
            "backoff_seconds": 0,
            **extra,
        }

    return options


def azure_openai_setups(emulator: AzureOpenAIEmulator) -> dict[str, PluginSetup]:
    service = Service(upstream=emulator.url)
    return {
        "transform:azure_llm": PluginSetup(options=_options(emulator, prompt=PROMPT), service=service),
        "transform:azure_multi_query_llm": PluginSetup(options=_options(emulator, queries=QUERIES), service=service),
        "aggregate:azure_multi_query_llm": PluginSetup(options=_options(emulator, queries=QUERIES), service=service),
        "aggregate:azure_batch_llm": PluginSetup(
            options=_options(emulator, prompt=PROMPT, poll_interval_seconds=0.05), service=service
        ),
    }
