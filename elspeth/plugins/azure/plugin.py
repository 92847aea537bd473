"""Registers the Azure plugins through the `elspeth.plugins` entry point `azure`, like any third party."""

from elspeth.api import Register
from elspeth.hookspecs import hookimpl
from elspeth.plugins.azure.batch_llm import AzureBatchLLM
from elspeth.plugins.azure.blob_sink import AzureBlobSink
from elspeth.plugins.azure.blob_source import AzureBlobSource
from elspeth.plugins.azure.llm import AzureLLM
from elspeth.plugins.azure.multi_query import AzureMultiQueryLLM, AzureMultiQueryLLMAggregate


@hookimpl
def register_sources(register: Register) -> None:
    register(AzureBlobSource)


@hookimpl
def register_transforms(register: Register) -> None:
    register(AzureLLM)
    register(AzureMultiQueryLLM)


@hookimpl
def register_aggregates(register: Register) -> None:
    register(AzureMultiQueryLLMAggregate)
    register(AzureBatchLLM)


@hookimpl
def register_sinks(register: Register) -> None:
    register(AzureBlobSink)
