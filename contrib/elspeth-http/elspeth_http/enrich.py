"""The `http_enrich` transform: one JSON REST call per row, its answer added to the row.

Plain httpx, no SDK: every attempt is one request on the wire and one call recorded in the Landscape
(`ctx.call`), retried here, never inside the client, so the audit trail shows each attempt the server saw.
"""

from __future__ import annotations

import http
import json
import re
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx
from attrs import Attribute, field, frozen

from elspeth.api import (
    Capability,
    Context,
    Error,
    Row,
    Success,
    Transform,
    TransformResult,
    redacted_headers,
)
from elspeth.canonical import describe_non_canonical
from elspeth.errors import ConfigError
from elspeth.options import at_least, no_duplicates, not_negative, one_of, positive
from elspeth.retries import NOT_RETRIED, RetryPolicy, Tries, Verdict, retry, retry_after
from elspeth_http.template import MissingField, UnusableValue, UrlTemplate

PROVIDER = "http_enrich"
METHODS = ("GET", "POST")
RESPONSE_HEADERS = (
    "content-type",
    "content-length",
    "retry-after",
    "date",
    "etag",
    "last-modified",
    "location",
    "x-request-id",
)
"""The response headers kept in the recorded call: what explains an answer, not what sets cookies."""

_PREVIEW = 200


def _url_template(_instance: Any, attribute: Attribute[Any], value: str) -> None:
    template = UrlTemplate.parse(value, attribute.name)
    head = template.parts[0]
    if not re.match(r"https?://", head):
        raise ConfigError(
            f"option `url` is {value!r}; give an http:// or https:// URL, e.g. https://api.example.com/items/{{id}}"
        )
    # The host is the option's to choose, never a row's: placeholders may fill the path and query only.
    if not re.match(r"https?://[^/?#]+" + ("[/?#]" if template.fields else ""), head):
        raise ConfigError(f"option `url`: write out the host of {value!r}; row fields may fill its path and query only")


@frozen
class HttpEnrichConfig:
    url: str = field(validator=_url_template)
    """The endpoint, with `{field}` placeholders filled from the row (URL-quoted); the host is fixed."""
    method: str = field(default="GET", validator=one_of(*METHODS))
    body_fields: list[str] | None = field(default=None, validator=no_duplicates)
    """POST only: the row fields sent as the JSON object body (default: the whole row)."""
    headers: dict[str, str] = field(factory=dict)
    """Static request headers; values under secret-looking names never reach the Landscape."""
    output_field: str = "response"
    """Where the JSON answer goes in the row."""
    timeout_seconds: float = field(default=30.0, validator=positive)
    max_attempts: int = field(default=3, validator=at_least(1))
    """Attempts per row in this transform (each recorded); 429, 5xx, timeouts and dropped connections retry."""
    backoff_seconds: float = field(default=1.0, validator=not_negative)
    """Wait before retry N: backoff_seconds * 2**(N-1), unless the server sent Retry-After."""

    def __attrs_post_init__(self) -> None:
        if self.body_fields is not None and self.method != "POST":
            raise ConfigError(f"option `body_fields` applies to POST only; method is {self.method}")
        if not self.output_field:
            raise ConfigError("option `output_field` is empty; name the field the answer goes to")


class _Failed(Exception):
    """An attempt that got no usable answer. Raised inside `ctx.call`, so the call is recorded as an ERROR
    with whatever response there was; caught outside it to decide on a retry."""

    def __init__(
        self,
        reason: str,
        *,
        retryable: bool,
        status: int | None = None,
        wait: float | None = None,
        unreachable: bool = False,
    ):
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.status = status
        self.wait = wait
        self.unreachable = unreachable
        """No connection at all (refused, no such host, connect timeout): the service's fault, not the row's."""


class HttpStatusError(_Failed):
    pass


class NotJsonError(_Failed):
    pass


class HttpEnrich(Transform):
    """Calls `url` (GET, or POST with a JSON body) for each row and puts the JSON answer in `output_field`.

    A 4xx other than 429 is the row's Error, not retried. 429, 5xx, a timeout, a dropped connection or a
    body that is not JSON is retried up to `max_attempts` times, honouring Retry-After; then the row gets a
    retryable Error, which the engine may retry in turn. A service that cannot be connected to at all on the
    last attempt is no row's Error: ServiceUnreachable stops the run for `elspeth resume`. Every attempt is
    one recorded call."""

    name = "http_enrich"
    config_class = HttpEnrichConfig
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.EXTERNAL_CALLS})
    config: HttpEnrichConfig

    def __init__(self, config: HttpEnrichConfig) -> None:
        super().__init__(config)
        self.template = UrlTemplate.parse(config.url)
        self.headers = {"Accept": "application/json", **config.headers}
        if config.method == "POST":
            self.headers.setdefault("Content-Type", "application/json")
        self.recorded_headers = redacted_headers(self.headers)
        # No redirects: a followed redirect is a second request on the wire inside one recorded call.
        self.client = httpx.Client(timeout=config.timeout_seconds, follow_redirects=False)
        self.policy = RetryPolicy(max_attempts=config.max_attempts, backoff_seconds=config.backoff_seconds)

    def close(self) -> None:
        self.client.close()

    def process(self, row: Row, ctx: Context) -> TransformResult:
        cfg = self.config
        if cfg.output_field in row:
            return Error(
                f"the row already has a field {cfg.output_field!r} (option `output_field`); "
                "choose another output_field, or drop that field first"
            )
        try:
            url = self.template.render(row)
        except MissingField as exc:
            return Error(f"field {exc.args[0]!r} (option `url`) is not in the row; it has {_names(row)}")
        except UnusableValue as exc:
            return Error(f"option `url`: {exc}")
        body: dict[str, Any] | None = None
        if cfg.method == "POST":
            names = cfg.body_fields if cfg.body_fields is not None else list(row)
            missing = [n for n in names if n not in row]
            if missing:
                return Error(f"field {missing[0]!r} (option `body_fields`) is not in the row; it has {_names(row)}")
            body = {n: row[n] for n in names}
        request: dict[str, Any] = {"method": cfg.method, "url": url, "headers": self.recorded_headers}
        if body is not None:
            request["json"] = body

        used = 0

        def attempt(tries: Tries) -> Any:
            nonlocal used
            used = tries.attempt
            return self._attempt(ctx, request, url, body)

        service = "{0.scheme}://{0.netloc}".format(urlsplit(url))
        try:
            answer = retry(ctx, self.policy, attempt, _verdict, service=service)
        except _Failed as failure:
            if not failure.retryable:
                return Error(failure.reason, retryable=False, details=_details(cfg.method, url, failure, used))
            return Error(
                f"{failure.reason}; gave up after {used} attempt(s)",
                retryable=True,
                details=_details(cfg.method, url, failure, used),
            )
        return Success({**row, cfg.output_field: answer})

    def _attempt(self, ctx: Context, request: dict[str, Any], url: str, body: Any) -> Any:
        """One request, recorded as one call; returns the decoded answer or raises _Failed."""
        method = self.config.method
        where = f"{method} {url}"
        try:
            with ctx.call("http", PROVIDER, request) as call:
                response = self.client.request(method, url, json=body, headers=self.headers)
                data = response.content
                parsed, not_json = _decode(data)
                record: dict[str, Any] = {"status": response.status_code, "headers": _kept_headers(response)}
                if not_json is None:
                    record["json"] = parsed
                else:
                    record["body"] = data
                call.response = record
                status = response.status_code
                if not 200 <= status < 300:
                    raise _status_failure(status, response, data, where, ctx)
                if not_json is not None:
                    raise NotJsonError(
                        f"HTTP {status} from {where} is not usable JSON ({not_json}): {_preview(data)}",
                        retryable=not_json.startswith("not valid JSON"),
                        status=status,
                    )
                return parsed
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise _Failed(
                f"{type(exc).__name__} from {where}: {str(exc) or 'no connection'}", retryable=True, unreachable=True
            ) from exc
        except httpx.TimeoutException as exc:
            raise _Failed(
                f"no answer from {where} within {self.config.timeout_seconds}s ({type(exc).__name__})", retryable=True
            ) from exc
        except httpx.RequestError as exc:  # connection refused or reset, a protocol error, an undecodable body
            raise _Failed(
                f"{type(exc).__name__} from {where}: {str(exc) or 'connection failed'}", retryable=True
            ) from exc


def _verdict(exc: BaseException) -> Verdict:
    if not isinstance(exc, _Failed):
        return NOT_RETRIED
    return Verdict(retry=exc.retryable, retry_after=exc.wait, unreachable=exc.unreachable)


def _status_failure(status: int, response: httpx.Response, data: bytes, where: str, ctx: Context) -> _Failed:
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    text = f"HTTP {status} {phrase}".rstrip() + f" from {where}: {_preview(data)}"
    if status == 429 or status >= 500:
        wait = retry_after(response.headers, ctx.clock.now())
        return HttpStatusError(text, retryable=True, status=status, wait=wait)
    if 300 <= status < 400:
        text += f"; redirects are not followed: point `url` at {response.headers.get('location') or 'the new place'}"
    return HttpStatusError(text + " (not retried: the request itself was refused)", retryable=False, status=status)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _decode(data: bytes) -> tuple[Any, str | None]:
    """The JSON value of a body and None, or (None, why it is not usable JSON). An empty body is null."""
    if not data:
        return None, None
    try:
        value = json.loads(data, parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        return None, f"not valid JSON: {exc}"
    problem = describe_non_canonical(value)
    if problem is not None:
        return None, f"a value that cannot be recorded faithfully: {problem}"
    return value, None


def _kept_headers(response: httpx.Response) -> dict[str, str]:
    return {name: response.headers[name] for name in RESPONSE_HEADERS if name in response.headers}


def _preview(data: bytes) -> str:
    text = " ".join(data.decode("utf-8", errors="replace").split())
    return text if len(text) <= _PREVIEW else text[: _PREVIEW - 1] + "…"


def _details(method: str, url: str, failure: _Failed, attempts: int) -> Mapping[str, Any]:
    return {"method": method, "url": url, "status": failure.status, "attempts": attempts}


def _names(row: Row) -> str:
    return ", ".join(repr(key) for key in row) or "no fields"
