"""The `azure_batch_llm` aggregate: a batch of rows through the Azure OpenAI Batch API.

First call (no checkpoint): the rows become one JSONL input file (a chat completion request per row, its
`custom_id` "<hash of the batch's requests>-row-<i>"), uploaded with `files.create`, then `batches.create`;
the answer is Pending with the batch id in the checkpoint. Submitting is idempotent: the batch's metadata
carries `ctx.work_key` (the run, the node, the member tokens: the same after a resume), and `batches.list`
looks for a batch so tagged before any upload or create, so a crash between `batches.create` and the
checkpoint's commit, or a create whose answer was lost, costs no second batch: the next attempt adopts it.

Later calls (the checkpoint set, also after a resume): `batches.retrieve`; once completed, `files.content`
of the output file and of the error file, and each row gets its answer back by custom_id. Every one of these
calls is recorded in full (call type "llm_batch"): the whole JSONL uploaded, every file downloaded, every
batch object, every page listed; big bodies go to the payload store.

Per-row results: the batch answers with one output row per input row, in order, each carrying its
`custom_id_field`, `status_field` and `error_field`:

- "ok": the answer is in `output_field`;
- "error": the row's prompt could not be rendered (never submitted), its line came back as an error
  (error file, non-200 status), or the answer is unusable (no text, not the JSON asked for);
- "malformed": its output line could not be parsed;
- "missing": the batch completed without a line for it.

So nothing is lost: every row comes out with what happened to it, traceable to the recorded output by its
custom_id; route on `status_field` to send the failures elsewhere. A batch that ends failed or cancelled is
an Error (not retried: the rows go to the node's error sink, the reason holds the batch's errors); expired
is a retryable Error (the engine submits the rows again as a new batch).
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

from attrs import evolve, field, frozen

from elspeth import canonical
from elspeth.api import Aggregate, BatchResult, Capability, Cardinality, Context, Error, Pending, Row, Success
from elspeth.plugins.azure.openai_calls import (
    AzureOpenAIClient,
    AzureOpenAIOptions,
    CallFailure,
    Prompts,
    positive,
    strict_json,
    valid_template,
    verdict,
)
from elspeth.plugins.azure.prompts import PromptError
from elspeth.retries import NOT_RETRIED, Tries, Verdict, retry

LIST_LIMIT = 100
"""Batches per `batches.list` page, the API's maximum."""
PENDING_STATUSES = frozenset({"validating", "in_progress", "finalizing", "cancelling"})
_CUSTOM_ID = re.compile(r'"custom_id"\s*:\s*"((?:[^"\\]|\\.)*)"')


@frozen(kw_only=True)
class AzureBatchLLMConfig(AzureOpenAIOptions):
    prompt: str = field(validator=valid_template)
    """A Jinja2 template over the row's fields, e.g. 'Classify the sentiment of: {{ text }}'."""
    output_field: str = "llm_response"
    """Where each row's answer goes (null unless its status is "ok")."""
    custom_id_field: str = "llm_custom_id"
    status_field: str = "llm_status"
    """"ok", "error", "malformed" or "missing" (the module's docstring says when)."""
    error_field: str = "llm_error"
    poll_interval_seconds: float = field(default=30.0, validator=positive)
    """Wait between two `batches.retrieve` of a pending batch."""
    max_poll_errors: int = field(default=10, validator=positive)
    """Polls in a row that may fail (429, 5xx, timeouts) before the batch is given up as an Error."""
    lookup_max_age_seconds: float = field(default=7 * 86400.0, validator=positive)
    """How far back `batches.list` looks for a batch an interrupted attempt created for the same rows."""


@frozen
class _LineResult:
    status: str
    answer: Any = None
    error: str | None = None


class AzureBatchLLM(Aggregate):
    """Sends each batch of rows through the Azure OpenAI Batch API (see the module docstring)."""

    name = "azure_batch_llm"
    config_class = AzureBatchLLMConfig
    capabilities = frozenset({Capability.EXTERNAL_CALLS, Capability.PENDING})
    cardinality = Cardinality.ONE_PER_ROW
    config: AzureBatchLLMConfig

    def __init__(self, config: AzureBatchLLMConfig) -> None:
        super().__init__(config)
        self.prompts = Prompts(config.prompt, "prompt", config.system_prompt)
        self.client = AzureOpenAIClient(config)

    def close(self) -> None:
        self.client.close()

    def process_batch(self, rows: list[Row], ctx: Context) -> BatchResult:
        if ctx.checkpoint is None:
            return self._submit(rows, ctx)
        return self._poll(rows, ctx, dict(ctx.checkpoint))

    # ------------------------------------------------------------ submitting

    def _submit(self, rows: list[Row], ctx: Context) -> BatchResult:
        bodies: list[dict[str, Any] | None] = []
        skipped: dict[str, str] = {}
        for index, row in enumerate(rows):
            try:
                bodies.append(self.client.chat_body(self.prompts.messages(row)))
            except PromptError as exc:
                bodies.append(None)
                skipped[str(index)] = str(exc)
        prefix = canonical.stable_hash(bodies)[:16]
        custom_ids = [None if body is None else f"{prefix}-row-{i}" for i, body in enumerate(bodies)]
        if all(body is None for body in bodies):
            return Success(*self._rows(rows, custom_ids, skipped, {}, []))
        lines = [
            {"custom_id": cid, "method": "POST", "url": "/chat/completions", "body": body}
            for cid, body in zip(custom_ids, bodies, strict=True)
            if body is not None
        ]
        jsonl = "".join(json.dumps(line, ensure_ascii=False, allow_nan=False) + "\n" for line in lines)
        metadata = {"elspeth_run_id": ctx.run_id, "elspeth_work": ctx.work_key, "elspeth_requests": prefix}
        try:
            batch, adopted = self._adopt_or_create(ctx, jsonl, metadata)
        except CallFailure as failure:
            return Error(f"submitting the batch failed: {failure.reason}", failure.retryable, failure.details())
        checkpoint = {
            "batch_id": batch["id"],
            "input_file_id": batch["input_file_id"],
            "custom_ids": custom_ids,
            "skipped": skipped,
            "poll_errors": 0,
            "adopted": adopted,
        }
        return Pending(checkpoint, retry_after=self.config.poll_interval_seconds)

    def _adopt_or_create(self, ctx: Context, jsonl: str, metadata: dict[str, str]) -> tuple[dict[str, Any], bool]:
        """The remote batch for these rows: one an earlier attempt created (a crash or a lost answer between
        `batches.create` and the checkpoint's commit), found by its metadata, else a new one. Creating is
        never retried blindly: a create that failed may have created the batch all the same, so every attempt
        looks first."""
        file_id: str | None = None
        creating = False

        def attempt(_tries: Tries) -> tuple[dict[str, Any], bool]:
            nonlocal file_id, creating
            creating = False
            found = self._find(ctx, metadata)
            if found is not None:
                return found, True
            if file_id is None:
                file_id = self._upload(ctx, jsonl, metadata["elspeth_work"])
            creating = True
            return self._create(ctx, file_id, metadata), False

        # Only a failed create is tried again here (looking first); the look and the upload retry on their own.
        def judge(exc: BaseException) -> Verdict:
            return verdict(exc) if creating else NOT_RETRIED

        policy = evolve(self.client.policy, max_attempts=self.config.max_attempts)
        return retry(ctx, policy, attempt, judge, service=self.client.options.endpoint)

    def _find(self, ctx: Context, metadata: dict[str, str]) -> dict[str, Any] | None:
        """The newest batch tagged with this work and these requests that did not expire (an expired one is
        the reason the engine submits the rows again), paging through `batches.list`, back to
        `lookup_max_age_seconds` when the pages come newest first (as Azure's do), else to the end."""
        oldest = ctx.clock.now() - self.config.lookup_max_age_seconds
        after: str | None = None
        while True:
            params: dict[str, Any] = {"limit": LIST_LIMIT} | ({"after": after} if after else {})
            # `looking_for` is the intent on record before any create: the tag the batch about to be created
            # will carry, so an auditor can tie a batch to this run even if the create's own record never lands.
            request = {
                "operation": "batches.list",
                "method": "GET",
                "url": self.client.url("/batches"),
                **params,
                "looking_for": metadata,
            }
            page = self.client.call(
                ctx,
                "llm_batch",
                request,
                functools.partial(self.client.sdk.batches.list, **params),
                lambda result: result.model_dump(mode="json"),
            )
            batches = [b for b in page.get("data") or [] if isinstance(b, dict)]
            for b in batches:
                tags = b.get("metadata") or {}
                if b.get("status") != "expired" and all(tags.get(k) == v for k, v in metadata.items()):
                    return b
            if not page.get("has_more") or not batches:
                return None
            created = [b.get("created_at") or 0 for b in batches]
            if created == sorted(created, reverse=True) and created[-1] < oldest:
                return None  # newest first, and this page reached back past the age limit: the rest is older
            after = batches[-1]["id"]

    def _upload(self, ctx: Context, jsonl: str, work: str) -> str:
        filename = f"elspeth-{work}.jsonl"
        # The whole JSONL is the recorded request (seed 001: never its size only); the recorder moves a big
        # body to the payload store.
        upload = {
            "operation": "files.create",
            "method": "POST",
            "url": self.client.url("/files"),
            "purpose": "batch",
            "filename": filename,
            "file": jsonl,
        }
        data = jsonl.encode("utf-8")
        uploaded = self.client.call(
            ctx,
            "llm_batch",
            upload,
            lambda: self.client.sdk.files.create(file=(filename, data, "application/jsonl"), purpose="batch"),
            lambda result: result.model_dump(mode="json"),
        )
        file_id: str = uploaded["id"]
        return file_id

    def _create(self, ctx: Context, file_id: str, metadata: dict[str, str]) -> dict[str, Any]:
        body: dict[str, Any] = {
            "completion_window": "24h",
            "endpoint": "/chat/completions",
            "input_file_id": file_id,
            "metadata": metadata,
        }
        create = {"operation": "batches.create", "method": "POST", "url": self.client.url("/batches"), "body": body}
        created: dict[str, Any] = self.client.call(
            ctx,
            "llm_batch",
            create,
            lambda: self.client.sdk.batches.create(**body),
            lambda result: result.model_dump(mode="json"),
            attempts=1,
        )
        return created

    # ------------------------------------------------------------ polling

    def _poll(self, rows: list[Row], ctx: Context, checkpoint: dict[str, Any]) -> BatchResult:
        batch_id = checkpoint["batch_id"]
        request = {
            "operation": "batches.retrieve",
            "method": "GET",
            "url": self.client.url(f"/batches/{batch_id}"),
            "batch_id": batch_id,
        }
        try:
            batch = self.client.call(
                ctx,
                "llm_batch",
                request,
                lambda: self.client.sdk.batches.retrieve(batch_id),
                lambda result: result.model_dump(mode="json"),
            )
            status = batch.get("status")
            if status in PENDING_STATUSES:
                return Pending({**checkpoint, "poll_errors": 0}, retry_after=self.config.poll_interval_seconds)
            if status != "completed":
                return self._ended(batch_id, status, batch)
            outputs = [
                self._download(ctx, file_id) for file_id in (batch.get("output_file_id"), batch.get("error_file_id"))
            ]
        except CallFailure as failure:
            return self._poll_failed(batch_id, checkpoint, failure)
        results, unreadable = self._results(outputs)
        return Success(*self._rows(rows, checkpoint["custom_ids"], checkpoint["skipped"], results, unreadable))

    def _download(self, ctx: Context, file_id: str | None) -> bytes:
        if not file_id:
            return b""
        request = {
            "operation": "files.content",
            "method": "GET",
            "url": self.client.url(f"/files/{file_id}/content"),
            "file_id": file_id,
        }

        def describe(content: bytes) -> dict[str, Any]:
            # The whole file is the recorded response (seed 001): bytes, stored as text when they are UTF-8.
            return {"file_id": file_id, "content": content}

        response = self.client.call(
            ctx,
            "llm_batch",
            request,
            lambda: self.client.sdk.files.content(file_id).content,
            describe,
        )
        content: bytes = response["content"]
        return content

    def _poll_failed(self, batch_id: str, checkpoint: dict[str, Any], failure: CallFailure) -> BatchResult:
        details = {**failure.details(), "batch_id": batch_id}
        if not failure.retryable:
            return Error(f"Azure batch {batch_id}: {failure.reason}", False, details)
        errors = int(checkpoint.get("poll_errors", 0)) + 1
        if errors >= self.config.max_poll_errors:
            return Error(
                f"Azure batch {batch_id}: {errors} polls in a row failed (option `max_poll_errors`), the last with "
                f"{failure.reason}; the batch may still run: find it by its id",
                False,
                details,
            )
        # The batch exists and is still ours: keep polling it, never submit the rows again.
        return Pending({**checkpoint, "poll_errors": errors}, retry_after=self.config.poll_interval_seconds)

    def _ended(self, batch_id: str, status: Any, batch: dict[str, Any]) -> BatchResult:
        errors = (batch.get("errors") or {}).get("data") or []
        described = "; ".join(
            f"{e.get('code')}: {e.get('message')}" + (f" (line {e['line']})" if e.get("line") else "")
            for e in errors
            if isinstance(e, dict)
        )
        reason = f"Azure batch {batch_id} ended {status}" + (f": {described}" if described else "")
        details = {"batch_id": batch_id, "status": status, "errors": errors}
        if status == "expired":
            return Error(reason + "; its rows will be submitted again", True, details)
        return Error(reason, False, details)

    # ------------------------------------------------------------ results

    def line_result(self, line: dict[str, Any]) -> _LineResult:
        """What one parsed output or error line says about its row."""
        error = line.get("error")
        response = line.get("response")
        if error:
            return _LineResult("error", error=f"the batch answered this row with an error: {_describe_error(error)}")
        if not isinstance(response, dict):
            return _LineResult("malformed", error="its output line has neither a response nor an error")
        status_code = response.get("status_code")
        body = response.get("body")
        if status_code != 200:
            detail = _describe_error(body.get("error", body) if isinstance(body, dict) else body)
            return _LineResult("error", error=f"the batch answered this row with HTTP {status_code}: {detail}")
        try:
            return _LineResult("ok", answer=self.client.answer(body))
        except CallFailure as failure:
            return _LineResult("error", error=failure.reason)

    def _results(self, outputs: list[bytes]) -> tuple[dict[str, _LineResult], list[int]]:
        """Results by custom_id from the output and error files, and the numbers of lines naming no custom_id
        that could be read (1-based, counted over both files)."""
        results: dict[str, _LineResult] = {}
        unreadable: list[int] = []
        number = 0
        for data in outputs:
            for raw in data.decode("utf-8", errors="replace").splitlines():
                if not raw.strip():
                    continue
                number += 1
                try:
                    line = strict_json(raw)
                    if not isinstance(line, dict) or not isinstance(line.get("custom_id"), str):
                        raise ValueError("not an object with a custom_id")
                except ValueError as exc:
                    custom_id = _salvage_custom_id(raw)
                    if custom_id is None:
                        unreadable.append(number)
                    else:
                        message = f"its output line (line {number}) could not be parsed: {exc}"
                        results.setdefault(custom_id, _LineResult("malformed", error=message))
                    continue
                result = self.line_result(line)
                previous = results.get(line["custom_id"])
                if previous is None or (previous.status != "ok" and result.status == "ok"):
                    results[line["custom_id"]] = result
        return results, unreadable

    def _rows(
        self,
        rows: list[Row],
        custom_ids: list[str | None],
        skipped: dict[str, str],
        results: dict[str, _LineResult],
        unreadable: list[int],
    ) -> list[Row]:
        c = self.config
        out = []
        for index, (row, custom_id) in enumerate(zip(rows, custom_ids, strict=True)):
            if custom_id is None:
                result = _LineResult("error", error=f"not submitted: {skipped.get(str(index), 'no prompt')}")
            else:
                found = results.get(custom_id)
                if found is not None:
                    result = found
                else:
                    note = (
                        f"; {len(unreadable)} output line(s) could not be read at all (lines {unreadable[:10]})"
                        if unreadable
                        else ""
                    )
                    result = _LineResult("missing", error=f"the completed batch holds no line for this row{note}")
            out.append(
                {
                    **row,
                    c.output_field: result.answer,
                    c.custom_id_field: custom_id,
                    c.status_field: result.status,
                    c.error_field: result.error,
                }
            )
        return out


def _describe_error(error: Any) -> str:
    if isinstance(error, dict):
        code, message = error.get("code"), error.get("message")
        if code or message:
            return f"{code}: {message}"
    return json.dumps(error, ensure_ascii=False, default=str)


def _salvage_custom_id(raw: str) -> str | None:
    """The custom_id a line that is not valid JSON still shows (a cut line keeps its start), if any."""
    match = _CUSTOM_ID.search(raw)
    if match is None:
        return None
    try:
        custom_id = json.loads(f'"{match.group(1)}"')
    except ValueError:
        return None
    return custom_id if isinstance(custom_id, str) else None
