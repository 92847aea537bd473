"""The `azure_multi_query_llm` transform and aggregate: several named prompts per row, one answer field each."""

from __future__ import annotations

from typing import Any

from attrs import field, frozen

from elspeth.api import (
    Aggregate,
    BatchResult,
    Capability,
    Context,
    Error,
    Row,
    Success,
    Transform,
    TransformResult,
)
from elspeth.errors import ConfigError
from elspeth.plugins.azure.openai_calls import AzureOpenAIClient, AzureOpenAIOptions, CallFailure, Prompts
from elspeth.plugins.azure.prompts import PromptError, check_template


def _queries(_instance: Any, attribute: Any, value: dict[str, str]) -> None:
    if not value:
        raise ConfigError(
            f"option `{attribute.name}` needs at least one query: a name (the output field) and its prompt template, "
            "e.g. {sentiment: 'Sentiment of: {{ text }}'}"
        )
    for name, template in value.items():
        if not name.strip():
            raise ConfigError(f"option `{attribute.name}` has a query with an empty name; name each query")
        check_template(f"{attribute.name}.{name}", template)


@frozen(kw_only=True)
class AzureMultiQueryConfig(AzureOpenAIOptions):
    queries: dict[str, str] = field(validator=_queries)
    """Query name -> prompt template; each answer goes into the field named like its query, in this order."""


@frozen(kw_only=True)
class AzureMultiQueryAggregateConfig(AzureMultiQueryConfig):
    status_field: str = "llm_status"
    """Per output row: "ok", or "error" when this row's prompts or answers failed (see `error_field`)."""
    error_field: str = "llm_error"
    """Per output row: why it failed, or null."""


class _MultiQuery:
    """The queries of one plugin instance: their templates and the client that asks them."""

    def __init__(self, config: AzureMultiQueryConfig) -> None:
        self.config = config
        self.prompts = {
            name: Prompts(template, f"queries.{name}", config.system_prompt)
            for name, template in config.queries.items()
        }
        self.client = AzureOpenAIClient(config)

    def messages(self, row: Row) -> dict[str, list[dict[str, str]]]:
        """Every query's messages for `row`, rendered before any call; raises PromptError."""
        return {name: prompts.messages(row) for name, prompts in self.prompts.items()}

    def ask(self, ctx: Context, row: Row) -> dict[str, Any]:
        """The answers for `row`, by query name, each call recorded under `ctx`. Raises PromptError, or
        CallFailure with the query named in its reason."""
        answers: dict[str, Any] = {}
        for name, messages in self.messages(row).items():
            try:
                answers[name] = self.client.chat(ctx, messages)
            except CallFailure as failure:
                failure.reason = f"query {name!r}: {failure.reason}"
                raise
        return answers


class AzureMultiQueryLLM(Transform):
    """Asks every query of `queries` about the row, one chat completion each (recorded calls of type "llm"
    under the row's state), and adds each answer as a field named like its query. Any query failing makes
    the row's Error (retryable when the failure is: 429, 5xx, timeouts, after `max_attempts`)."""

    name = "azure_multi_query_llm"
    config_class = AzureMultiQueryConfig
    capabilities = frozenset({Capability.EXTERNAL_CALLS})
    default_concurrency = 8
    config: AzureMultiQueryConfig

    def __init__(self, config: AzureMultiQueryConfig) -> None:
        super().__init__(config)
        self.queries = _MultiQuery(config)

    def process(self, row: Row, ctx: Context) -> TransformResult:
        try:
            answers = self.queries.ask(ctx, row)
        except PromptError as exc:
            return Error(str(exc))
        except CallFailure as failure:
            return Error(failure.reason, retryable=failure.retryable, details=failure.details())
        return Success({**row, **answers})

    def close(self) -> None:
        self.queries.client.close()


class AzureMultiQueryLLMAggregate(Aggregate):
    """The same queries over a whole batch: every call is recorded under the flush's own state (the batch's
    node_state; never one made up per row), in row order, then query order.

    One output row per input row, in order, with the answers plus `status_field` and `error_field`. A row
    whose own values fail (a field the templates need is missing, the service refuses its prompt with a 400
    or a content filter, the answer is not the JSON asked for) comes out with status "error", the reason, and
    null answers: the other rows keep theirs. A failure that is not the row's fails the whole batch: after
    `max_attempts`, a 429/5xx/timeout is a retryable Error (the engine runs the batch again), a bad key or
    unknown deployment a final one (the rows go to the node's error sink)."""

    name = "azure_multi_query_llm"
    config_class = AzureMultiQueryAggregateConfig
    capabilities = frozenset({Capability.EXTERNAL_CALLS})
    config: AzureMultiQueryAggregateConfig

    def __init__(self, config: AzureMultiQueryAggregateConfig) -> None:
        super().__init__(config)
        self.queries = _MultiQuery(config)

    def process_batch(self, rows: list[Row], ctx: Context) -> BatchResult:
        status, error = self.config.status_field, self.config.error_field
        unanswered = dict.fromkeys(self.config.queries)
        out: list[Row] = []
        for index, row in enumerate(rows):
            try:
                answers = self.queries.ask(ctx, row)
            except PromptError as exc:
                out.append({**row, **unanswered, status: "error", error: str(exc)})
                continue
            except CallFailure as failure:
                if failure.kind == "row":
                    out.append({**row, **unanswered, status: "error", error: failure.reason})
                    continue
                return Error(
                    f"row {index} of the batch, {failure.reason}",
                    retryable=failure.retryable,
                    details={**failure.details(), "row": index},
                )
            out.append({**row, **answers, status: "ok", error: None})
        return Success(*out)

    def close(self) -> None:
        self.queries.client.close()
