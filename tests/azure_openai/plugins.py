"""The Azure OpenAI plugins registered for these tests the way any plugin is, through the register hooks
(entry points are not loaded: the tests must exercise these modules whatever else is installed)."""

from __future__ import annotations

from elspeth.api import Register
from elspeth.hookspecs import hookimpl
from elspeth.plugin_manager import PluginRegistry, make_plugin_manager
from elspeth.plugins import builtin
from elspeth.plugins.azure.batch_llm import AzureBatchLLM
from elspeth.plugins.azure.llm import AzureLLM
from elspeth.plugins.azure.multi_query import AzureMultiQueryLLM, AzureMultiQueryLLMAggregate


class AzureOpenAIPlugins:
    @hookimpl
    def register_transforms(self, register: Register) -> None:
        register(AzureLLM)
        register(AzureMultiQueryLLM)

    @hookimpl
    def register_aggregates(self, register: Register) -> None:
        register(AzureMultiQueryLLMAggregate)
        register(AzureBatchLLM)


def azure_openai_registry() -> PluginRegistry:
    return PluginRegistry(make_plugin_manager(extra_plugins=[builtin, AzureOpenAIPlugins()], load_entry_points=False))
