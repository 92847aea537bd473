"""Blob SDK operations as recorded calls: every HTTP request the SDK makes is one `calls` row, with the
exact bytes that crossed the wire.

The SDK's own `raw_request_hook` / `raw_response_hook` see each request and response (after the SDK's retry
policy, which the client turns off, and before the credential policy signs the request, so neither the
Authorization header nor a SAS query reaches them). Usually an operation is one request; when the SDK makes
more on its own (a 416 on an empty blob, then a plain GET), each is recorded. A request is recorded with its
body (a staged block, a block list's XML), a response with its body (a block list's XML, a downloaded
chunk); a request that failed on the wire (no answer, HTTP >= 400, a body shorter than its Content-Range)
is an ERROR call. Transient failures are retried here, each attempt its own call.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from attrs import define, field

from elspeth.api import Context
from elspeth.errors import ConfigError, ElspethError
from elspeth.plugins.azure.blob_auth import BlobAccessConfig, blob_url
from elspeth.retries import NOT_RETRIED, RetryPolicy, Tries, Verdict, retry, retry_after

if TYPE_CHECKING:
    from azure.storage.blob import BlobClient

T = TypeVar("T")

PROVIDER = "azure_blob"
CALL_TYPE = "blob"
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_KEPT_HEADERS = (
    "etag",
    "content-length",
    "content-range",
    "last-modified",
    "x-ms-request-id",
    "x-ms-error-code",
    "x-ms-blob-content-length",
    "retry-after",
)


class BodyMismatch(ElspethError):
    """A response body whose length is not the one its headers announced (cut short or garbled)."""


@define
class _Exchange:
    method: str
    url: str
    range: str | None
    body: bytes | None
    started: float
    status: int | None = None
    headers: dict[str, str] = field(factory=dict)
    response_body: bytes | None = None
    ended: float | None = None

    @property
    def failed(self) -> bool:
        return self.status is None or self.status >= 400

    def body_mismatch(self) -> str | None:
        """Why the body is not the one a ranged GET's Content-Range announced (cut short, garbled), if so."""
        content_range = self.headers.get("content-range", "")
        span = content_range.removeprefix("bytes ").split("/", 1)[0]
        first, _, last = span.partition("-")
        if self.failed or self.response_body is None or not (first.isdigit() and last.isdigit()):
            return None
        expected = int(last) - int(first) + 1
        if expected == len(self.response_body):
            return None
        return f"Content-Range {content_range} announced {expected} bytes, the body holds {len(self.response_body)}"


def _body_of(message: Any) -> bytes | None:
    content = getattr(message, "content", None)
    if isinstance(content, bytes | bytearray):
        return bytes(content)
    if isinstance(content, str):
        return content.encode("utf-8")
    return None


class _Wire:
    """The SDK hooks: each request and its response, in order (the plugins never run requests in parallel)."""

    def __init__(self) -> None:
        self.exchanges: list[_Exchange] = []

    def on_request(self, pipeline_request: Any) -> None:
        request = pipeline_request.http_request
        headers = request.headers
        self.exchanges.append(
            _Exchange(
                method=str(request.method),
                url=str(request.url).split("?", 1)[0],
                range=headers.get("x-ms-range") or headers.get("Range"),
                body=_body_of(request),
                started=time.perf_counter(),
            )
        )

    def on_response(self, pipeline_response: Any) -> None:
        if not self.exchanges:
            return
        exchange = self.exchanges[-1]
        response = pipeline_response.http_response
        exchange.status = int(response.status_code)
        exchange.headers = {k: response.headers[k] for k in _KEPT_HEADERS if k in response.headers}
        exchange.ended = time.perf_counter()
        exchange.response_body = _read_body(response)

    def hooks(self) -> dict[str, Any]:
        return {"raw_request_hook": self.on_request, "raw_response_hook": self.on_response}

    def take(self) -> list[_Exchange]:
        taken, self.exchanges = self.exchanges, []
        return taken


def _read_body(response: Any) -> bytes | None:
    """The response's body, also when the SDK streams it (a download): read here, through the requests
    response's own cache, which the SDK's stream then iterates. At most one chunk (`chunk_bytes`)."""
    from azure.core.exceptions import ResponseNotReadError, ServiceResponseError

    try:
        return _body_of(response)
    except ResponseNotReadError:
        pass
    internal = getattr(response, "internal_response", None)
    if internal is None or not hasattr(internal, "iter_content"):
        return None
    import requests

    try:
        return bytes(internal.content)
    except requests.RequestException as exc:
        raise ServiceResponseError(f"the response body could not be read: {exc}", error=exc) from exc


def status_of(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        return status
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    return status if isinstance(status, int) else None


def error_code_of(exc: BaseException) -> str | None:
    code = getattr(exc, "error_code", None)
    return str(code) if code else None


def is_transient(exc: BaseException) -> bool:
    from azure.core.exceptions import DecodeError, HttpResponseError, ServiceRequestError, ServiceResponseError

    # A body that could not be read or parsed (cut short, garbled) is worth asking for again.
    if isinstance(exc, BodyMismatch | DecodeError | ServiceRequestError | ServiceResponseError):
        return True
    if isinstance(exc, HttpResponseError):
        status = status_of(exc)
        # No status, or a success the SDK could not read or decode: the answer was lost on the way.
        return status is None or status < 400 or status in RETRY_STATUSES
    return isinstance(exc, ConnectionError | TimeoutError)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


class BlobCalls:
    """One blob's SDK operations for one plugin, each HTTP request recorded through the ctx of the node
    state that makes it. `kind` names the plugin in messages ("azure_blob sink")."""

    def __init__(self, config: BlobAccessConfig, client: BlobClient, *, kind: str) -> None:
        self.config = config
        self.client = client
        self.kind = kind
        self.url = blob_url(client)
        self.where = f"blob {client.blob_name!r} in container {config.container!r}"
        self.last_headers: dict[str, str] = {}
        """Headers of the last successful response (an etag, a size)."""
        self._wire = _Wire()
        self.policy = RetryPolicy(max_attempts=config.max_attempts, backoff_seconds=config.backoff_seconds)

    @property
    def hooks(self) -> dict[str, Any]:
        return self._wire.hooks()

    # ------------------------------------------------------------ one operation

    def run(
        self,
        ctx: Context,
        operation: str,
        call: Callable[[dict[str, Any]], T],
        *,
        details: Mapping[str, Any] | None = None,
        settled: Callable[[BaseException], bool] | None = None,
    ) -> T:
        """`call(hooks)` (an SDK method given the hooks as keyword arguments), retried on transient
        failures; every request recorded. `settled(exc)` is asked when a RETRIED attempt fails otherwise:
        True if the earlier attempt took effect after all (its answer was lost), so there is nothing to do."""

        def attempt(tries: Tries) -> T:
            try:
                return self.attempt(ctx, operation, call, details=details, attempt=tries.attempt)
            except Exception as exc:
                if tries.attempt > 1 and settled is not None and not is_transient(exc) and settled(exc):
                    return None  # type: ignore[return-value]
                raise

        return retry(ctx, self.policy, attempt, self._judge(ctx))

    def attempt(
        self,
        ctx: Context,
        operation: str,
        call: Callable[[dict[str, Any]], T],
        *,
        details: Mapping[str, Any] | None = None,
        attempt: int = 1,
    ) -> T:
        """One attempt: `call(hooks)`, then a calls row per request it made. A response whose body is not
        the one its Content-Range announced is an ERROR call and raises BodyMismatch (transient)."""
        try:
            result = call(self.hooks)
        except BaseException as exc:  # Ctrl-C in the middle of a request too: what was sent is on record
            self._record(ctx, operation, details, attempt, self._wire.take(), exc)
            raise
        exchanges = self._wire.take()
        problems = [(e, e.body_mismatch()) for e in exchanges]
        bad = next(((e, p) for e, p in problems if p), None)
        problem = None
        if bad is not None:
            problem = BodyMismatch(f"{self.kind}: reading {self.where}: GET {bad[0].range or ''}: {bad[1]}")
        # A body mismatch is the failure of its own request (recorded so), not of the ones after it.
        self._record(ctx, operation, details, attempt, exchanges, None)
        if problem is not None:
            raise problem
        return result

    def _judge(self, ctx: Context) -> Callable[[BaseException], Verdict]:
        def judge(exc: BaseException) -> Verdict:
            if not is_transient(exc):
                return NOT_RETRIED
            response = getattr(exc, "response", None)
            return Verdict(retry=True, retry_after=retry_after(getattr(response, "headers", None), ctx.clock.now()))

        return judge

    # ------------------------------------------------------------ downloads

    def download(self, ctx: Context, *, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        """The blob's bytes from `offset` (`length` of them, or to the end), one ranged GET per chunk, each
        recorded with the bytes it returned. After a transient failure the read goes on from where it
        stopped, at the same version of the blob (If-Match on its etag)."""
        position = offset
        end = None if length is None else offset + length
        etag: str | None = None
        chunks: list[Iterator[bytes]] = []  # the SDK's chunk iterator of the current download, once opened

        def next_chunk(tries: Tries) -> bytes | None:
            nonlocal etag, end
            try:
                if chunks:
                    step = partial(_next_chunk, chunks[0])
                    return self.attempt(ctx, "download", step, details={"offset": position}, attempt=tries.attempt)
                opened = self._opener(chunks, position, end, etag)
                data = self.attempt(ctx, "download", opened, details={"offset": position}, attempt=tries.attempt)
            except Exception:
                chunks.clear()
                raise
            etag = etag or self.last_headers.get("etag")
            if end is None:
                end = _total_size(self.last_headers)
            return data

        judge = self._judge(ctx)
        while end is None or position < end:
            data = retry(ctx, self.policy, next_chunk, judge)
            if data is None:
                break
            position += len(data)
            if data:
                yield data
        if end is not None and position != end:
            raise ElspethError(
                f"{self.kind}: reading {self.where} ended at byte {position}, but the blob has {end}; it changed "
                "while being read: run again"
            )

    def _opener(
        self, chunks: list[Iterator[bytes]], start: int, end: int | None, etag: str | None
    ) -> Callable[[dict[str, Any]], bytes | None]:
        """The SDK call that opens a download at `start` and returns its first chunk, keeping the iterator of
        the rest in `chunks`."""
        from azure.core import MatchConditions

        # At 0 with no end: no range given, so the SDK also reads an empty blob (a 416, then a plain GET).
        ranged: dict[str, Any] = (
            {} if start == 0 and end is None else {"offset": start, "length": None if end is None else end - start}
        )
        condition: dict[str, Any] = {}
        if etag is not None:
            condition = {"etag": etag, "match_condition": MatchConditions.IfNotModified}

        def first(hooks: dict[str, Any]) -> bytes | None:
            stream = self.client.download_blob(max_concurrency=1, **ranged, **condition, **hooks)
            chunks[:] = [stream.chunks()]
            return _next_chunk(chunks[0], hooks)

        return first

    # ------------------------------------------------------------ recording

    def _record(
        self,
        ctx: Context,
        operation: str,
        details: Mapping[str, Any] | None,
        attempt: int,
        exchanges: list[_Exchange],
        error: BaseException | None,
    ) -> None:
        base: dict[str, Any] = {
            "operation": operation,
            "container": self.config.container,
            "blob": self.client.blob_name,
            **(details or {}),
            "attempt": attempt,
        }
        if not exchanges:
            if error is not None:
                # It failed before any request was sent (an SDK argument, a credential): still on record.
                ctx.record_call(
                    call_type=CALL_TYPE,
                    provider=PROVIDER,
                    request={**base, "url": self.url},
                    error={"type": type(error).__name__, "message": str(error), "sent": False},
                )
            return
        last = len(exchanges) - 1
        for i, exchange in enumerate(exchanges):
            request = {**base, "method": exchange.method, "url": exchange.url}
            if exchange.range is not None:
                request["range"] = exchange.range
            if exchange.body:
                request["body"] = exchange.body
            mismatch = exchange.body_mismatch()
            response: dict[str, Any] | None = None
            if exchange.status is not None:
                response = {"status": exchange.status, **_response_headers(exchange.headers)}
                if exchange.response_body:
                    response["body"] = exchange.response_body
                if not exchange.failed and mismatch is None:
                    self.last_headers = exchange.headers
            failure: dict[str, Any] | None = None
            if mismatch is not None:
                failure = {"type": "BodyMismatch", "message": mismatch, "status": exchange.status}
            elif i == last and error is not None:
                failure = {"type": type(error).__name__, "message": str(error), "status": exchange.status}
            elif exchange.failed:
                failure = {
                    "type": "HttpResponseError",
                    "status": exchange.status,
                    "error_code": exchange.headers.get("x-ms-error-code"),
                    "message": "the SDK handled this answer and went on",
                }
            latency = None if exchange.ended is None else (exchange.ended - exchange.started) * 1000
            ctx.record_call(
                call_type=CALL_TYPE,
                provider=PROVIDER,
                request=request,
                response=response,
                error=failure,
                latency_ms=latency,
            )

    # ------------------------------------------------------------ what went wrong, for the user

    def explain(self, exc: BaseException, doing: str, *, permission: str) -> ElspethError:
        """An error naming the blob, what failed and what to check. `permission` is what a SAS must grant."""
        from azure.core.exceptions import ClientAuthenticationError

        status = status_of(exc)
        code = error_code_of(exc)
        where = f"{self.where} ({self.url})"
        if code == "ContainerNotFound":
            return ConfigError(
                f"{self.kind}: container {self.config.container!r} does not exist at {self.url.rsplit('/', 2)[0]}; "
                "check the `container` option, or create the container"
            )
        if isinstance(exc, ClientAuthenticationError) or status in (401, 403):
            return ConfigError(
                f"{self.kind}: {doing} {where} was refused (HTTP {status}{' ' + code if code else ''}): check "
                f"{self.config.auth_mode} (is it for this account, still valid?); a SAS must grant {permission}"
            )
        if code == "BlobNotFound" or status == 404:
            return ConfigError(
                f"{self.kind}: {self.where} does not exist ({self.url}); check the `blob_path` and `container` options"
            )
        if isinstance(exc, ElspethError):
            return exc
        tried = f"after {self.config.max_attempts} attempt(s)" if is_transient(exc) else "at once"
        if status is None:
            return ElspethError(
                f"{self.kind}: {doing} {where} failed {tried}: the service could not be reached or gave no usable "
                f"answer ({_short(exc)}); check the account URL and the network, then resume the run"
            )
        return ElspethError(
            f"{self.kind}: {doing} {where} failed {tried}: HTTP {status}{' ' + code if code else ''} "
            f"({_short(exc)}); resume the run once the service answers again"
        )


def _next_chunk(chunks: Iterator[bytes], hooks: dict[str, Any]) -> bytes | None:
    """The next chunk of a download (None at its end); the hooks were given when it was opened."""
    return next(chunks, None)


def _total_size(headers: Mapping[str, str]) -> int | None:
    content_range = headers.get("content-range", "")
    total = content_range.rpartition("/")[2]
    if total.isdigit():
        return int(total)
    length = headers.get("content-length")
    return int(length) if length and length.isdigit() else None


def _response_headers(headers: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in headers.items():
        name = key.removeprefix("x-ms-").replace("-", "_")
        out[name] = int(value) if key.endswith("length") and value.isdigit() else value
    return out
