"""The `azure_llm` transform: one Azure OpenAI chat completion per row."""

from __future__ import annotations

from attrs import field, frozen

from elspeth.api import Capability, Context, Error, Row, Success, Transform, TransformResult
from elspeth.plugins.azure.openai_calls import (
    AzureOpenAIClient,
    AzureOpenAIOptions,
    CallFailure,
    Prompts,
    valid_template,
)
from elspeth.plugins.azure.prompts import PromptError


@frozen(kw_only=True)
class AzureLLMConfig(AzureOpenAIOptions):
    prompt: str = field(validator=valid_template)
    """A Jinja2 template over the row's fields, e.g. 'Classify the sentiment of: {{ text }}'."""
    output_field: str = "llm_response"
    """Where the answer goes: its text, or with response_format json the parsed JSON value."""


class AzureLLM(Transform):
    """Renders the prompt for the row, asks the deployment, and adds the answer as `output_field`.

    Every HTTP attempt is a recorded call (type "llm") under the row's state, with the full request body and
    the full completion. A row whose fields do not fit the template, a request the service refuses (400, a
    content filter) or an answer that is not the JSON asked for is the row's Error; what is worth retrying
    (429, 5xx, timeouts) is retried up to `max_attempts`, then a retryable Error. Not declared deterministic:
    a model may answer the same prompt differently, whatever the temperature.
    """

    name = "azure_llm"
    config_class = AzureLLMConfig
    capabilities = frozenset({Capability.EXTERNAL_CALLS})
    default_concurrency = 16
    config: AzureLLMConfig

    def __init__(self, config: AzureLLMConfig) -> None:
        super().__init__(config)
        self.prompts = Prompts(config.prompt, "prompt", config.system_prompt)
        self.client = AzureOpenAIClient(config)

    def process(self, row: Row, ctx: Context) -> TransformResult:
        try:
            messages = self.prompts.messages(row)
        except PromptError as exc:
            return Error(str(exc))
        try:
            answer = self.client.chat(ctx, messages)
        except CallFailure as failure:
            return Error(failure.reason, retryable=failure.retryable, details=failure.details())
        return Success({**row, self.config.output_field: answer})

    def close(self) -> None:
        self.client.close()
