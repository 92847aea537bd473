"""The `azure_multi_query_llm` transform and aggregate: several named prompts per row, one answer field each.

The queries of a row (or of every row of a batch) are asked side by side, in a pool of `parallel_queries`
threads per plugin instance, each call recorded under the row's (or the flush's) state and waiting on the
deployment's rate budget like every other; answers keep query order, and rows keep theirs. A plugin call
returns only once every query it started has ended, so no call outlives the state it is recorded under.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from typing import Any

from attrs import field, frozen

from elspeth.api import (
    Aggregate,
    BatchResult,
    Capability,
    Cardinality,
    Context,
    Error,
    Row,
    Success,
    Transform,
    TransformResult,
)
from elspeth.errors import ConfigError
from elspeth.plugins.azure.openai_calls import AzureOpenAIClient, AzureOpenAIOptions, CallFailure, Prompts, positive
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
    parallel_queries: int = field(default=8, validator=positive)
    """Queries in flight at once for this node, over all its rows in flight (the rate budget still applies)."""


@frozen(kw_only=True)
class AzureMultiQueryAggregateConfig(AzureMultiQueryConfig):
    status_field: str = "llm_status"
    """Per output row: "ok", or "error" when this row's prompts or answers failed (see `error_field`)."""
    error_field: str = "llm_error"
    """Per output row: why it failed, or null."""


Answers = dict[str, Any]
"""A row's answers, by query name, in query order."""


class _Stopped(Exception):
    """A query failed for a reason that is not its row's: what was asked stops there."""

    def __init__(self, row: int, failure: CallFailure) -> None:
        super().__init__(failure.reason)
        self.row = row
        self.failure = failure


def _failure(future: Future[Any]) -> BaseException | None:
    return None if future.cancelled() else future.exception()


def _rows_own(exc: BaseException) -> bool:
    """Whether a failure is the row's own (its values), which fails that row only."""
    return isinstance(exc, CallFailure) and exc.kind == "row"


class _MultiQuery:
    """The queries of one plugin instance: their templates, the client that asks them, and the pool they are
    asked in."""

    def __init__(self, config: AzureMultiQueryConfig) -> None:
        self.config = config
        self.prompts = {
            name: Prompts(template, f"queries.{name}", config.system_prompt)
            for name, template in config.queries.items()
        }
        self.client = AzureOpenAIClient(config)
        self.pool = ThreadPoolExecutor(config.parallel_queries, thread_name_prefix=f"elspeth-{config.deployment}")

    def messages(self, row: Row) -> dict[str, list[dict[str, str]]]:
        """Every query's messages for `row`, rendered before any call; raises PromptError."""
        return {name: prompts.messages(row) for name, prompts in self.prompts.items()}

    def ask(
        self, ctx: Context, rows: Mapping[int, dict[str, list[dict[str, str]]]]
    ) -> dict[int, Answers | CallFailure]:
        """Every query of every row (index -> messages by query name), side by side, each call recorded under
        `ctx`: by row index, the row's answers, or the failure of its own (kind "row") that came first in
        query order. Once a query fails, the queries not yet started are dropped: the row's when the failure
        is the row's own, all of them when it is not; then the first such failure in row then query order is
        raised as _Stopped (ServiceUnreachable, or anything unexpected, as itself). Returns or raises only
        once every query that started has ended."""
        futures = {
            index: {name: self.pool.submit(self._ask_one, ctx, name, m) for name, m in messages.items()}
            for index, messages in rows.items()
        }
        row_of = {future: index for index, by_name in futures.items() for future in by_name.values()}
        pending: set[Future[Any]] = set(row_of)
        while pending:
            done, pending = wait(pending, return_when=FIRST_EXCEPTION)
            for future in done:
                exc = _failure(future)
                if exc is not None:
                    for other in futures[row_of[future]].values() if _rows_own(exc) else row_of:
                        other.cancel()
        outcomes: dict[int, Answers | CallFailure] = {}
        for index, by_name in futures.items():
            failures = [exc for f in by_name.values() if (exc := _failure(f)) is not None]
            stopping = next((exc for exc in failures if not _rows_own(exc)), None)
            if isinstance(stopping, CallFailure):
                raise _Stopped(index, stopping)
            if stopping is not None:
                raise stopping
            own = next((exc for exc in failures if isinstance(exc, CallFailure)), None)
            outcomes[index] = own if own is not None else {name: f.result() for name, f in by_name.items()}
        return outcomes

    def _ask_one(self, ctx: Context, name: str, messages: list[dict[str, str]]) -> Any:
        try:
            return self.client.chat(ctx, messages)
        except CallFailure as failure:
            failure.reason = f"query {name!r}: {failure.reason}"
            raise

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.client.close()


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
            answers = self.queries.ask(ctx, {0: self.queries.messages(row)})[0]
        except PromptError as exc:
            return Error(str(exc))
        except _Stopped as stopped:
            answers = stopped.failure
        if isinstance(answers, CallFailure):
            return Error(answers.reason, retryable=answers.retryable, details=answers.details())
        return Success({**row, **answers})

    def close(self) -> None:
        self.queries.close()


class AzureMultiQueryLLMAggregate(Aggregate):
    """The same queries over a whole batch, all side by side: every call is recorded under the flush's own
    state (the batch's node_state; never one made up per row), in the order they end.

    One output row per input row, in order, with the answers plus `status_field` and `error_field`. A row
    whose own values fail (a field the templates need is missing, the service refuses its prompt with a 400
    or a content filter, the answer is not the JSON asked for) comes out with status "error", the reason, and
    null answers: the other rows keep theirs. A failure that is not the row's fails the whole batch: after
    `max_attempts`, a 429/5xx/timeout is a retryable Error (the engine runs the batch again), a bad key or
    unknown deployment a final one (the rows go to the node's error sink)."""

    name = "azure_multi_query_llm"
    config_class = AzureMultiQueryAggregateConfig
    capabilities = frozenset({Capability.EXTERNAL_CALLS})
    cardinality = Cardinality.ONE_PER_ROW
    config: AzureMultiQueryAggregateConfig

    def __init__(self, config: AzureMultiQueryAggregateConfig) -> None:
        super().__init__(config)
        self.queries = _MultiQuery(config)

    def process_batch(self, rows: list[Row], ctx: Context) -> BatchResult:
        status, error = self.config.status_field, self.config.error_field
        unanswered = dict.fromkeys(self.config.queries)
        outcomes: dict[int, Answers | CallFailure | PromptError] = {}
        asked: dict[int, dict[str, list[dict[str, str]]]] = {}
        for index, row in enumerate(rows):
            try:
                asked[index] = self.queries.messages(row)
            except PromptError as exc:
                outcomes[index] = exc
        try:
            outcomes.update(self.queries.ask(ctx, asked))
        except _Stopped as stopped:
            failure = stopped.failure
            return Error(
                f"row {stopped.row} of the batch, {failure.reason}",
                retryable=failure.retryable,
                details={**failure.details(), "row": stopped.row},
            )
        out: list[Row] = []
        for index, row in enumerate(rows):
            outcome = outcomes[index]
            if isinstance(outcome, PromptError | CallFailure):
                reason = str(outcome) if isinstance(outcome, PromptError) else outcome.reason
                out.append({**row, **unanswered, status: "error", error: reason})
            else:
                out.append({**row, **outcome, status: "ok", error: None})
        return Success(*out)

    def close(self) -> None:
        self.queries.close()
