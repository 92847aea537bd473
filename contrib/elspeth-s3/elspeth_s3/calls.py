"""A boto3 S3 client whose every HTTP request is one call recorded through `ctx`, with what crossed the wire.

botocore's own retries are off (`total_max_attempts=1`): a retry it made on its own would put a request on
the wire that the audit trail does not hold. Retries happen here instead, each attempt its own call.
botocore event hooks see the request as sent (`before-send`: method, URL, headers, body) and the answer as
received (`before-parse`: headers and body before botocore parses them, so a garbled answer is kept too;
`response-received`: the status as sent, which botocore turns from 200 into 500 when the body is not XML).
Should botocore send twice within one operation (a region redirect), the first exchange is recorded as a
call of its own before the second goes out.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import boto3
from attrs import define, field, frozen
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    PartialCredentialsError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError
from botocore.parsers import ResponseParserError

from elspeth import retries
from elspeth.api import Context, redacted_headers
from elspeth.errors import ConfigError, ElspethError
from elspeth_s3.logs import RedactedLogs
from elspeth_s3.options import S3ObjectConfig

CALL_TYPE = "s3"
PROVIDER = "aws_s3"

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
RETRY_CODES = frozenset({"SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable", "Throttling"})
_BACKOFF_SECONDS = 0.25
_MAX_WAIT_SECONDS = 30.0
_SNAKE = re.compile(r"(?<!^)(?=[A-Z])")


class MalformedResponse(ElspethError):
    """S3 answered something that cannot be its answer (a body where none belongs, fewer bytes than the
    range announced): the same as a garbled answer, and retried like one."""


S3_ERRORS = (ClientError, BotoCoreError, ResponseParserError, MalformedResponse)
"""What an S3 operation raises when it fails (as opposed to a bug)."""

TRANSIENT = (HTTPClientError, BotoConnectionError, IncompleteReadError, ResponseParserError, MalformedResponse)
"""Timeouts, refused or dropped connections, short or garbled answers: worth another attempt."""


@frozen
class Reply:
    status: int
    headers: Mapping[str, str]
    body: bytes
    parsed: Mapping[str, Any]

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    @property
    def etag(self) -> str:
        """The object's or part's ETag: a header for most operations, in the body for CompleteMultipartUpload."""
        value = self.parsed.get("ETag") or self.header("etag")
        if not value:
            raise MalformedResponse(f"S3 answered {self.status} without the ETag it always sends")
        return str(value)


def status_of(exc: BaseException) -> int | None:
    """The HTTP status of a ClientError (None for anything else)."""
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return int(status) if status is not None else None
    return None


def code_of(exc: BaseException) -> str | None:
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code")
        return str(code) if code is not None else None
    return None


def _text(value: Any) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)


def _plain(value: Any) -> Any:
    """Request parameters as JSON: what boto3 was asked to do, for the reader of the audit trail."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


@define
class _Exchange:
    """One HTTP request and its answer, as the hooks saw them."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None
    status: int | None = None
    response_headers: dict[str, str] = field(factory=dict)
    response_body: bytes | None = None

    def request_record(self, base: dict[str, Any], body: bytes | None) -> dict[str, Any]:
        sent = self.body if self.body is not None else body
        return {**base, "method": self.method, "url": self.url, "headers": self.headers, "body": sent or b""}

    def response_record(self) -> dict[str, Any] | None:
        if self.status is None:
            return None
        return {
            "status": self.status,
            "etag": self.response_headers.get("etag"),
            "content_length": self.response_headers.get("content-length"),
            "headers": self.response_headers,
            "body": self.response_body if self.response_body is not None else b"",
        }


@define
class _Attempt:
    ctx: Context
    request: dict[str, Any]
    body: bytes | None
    exchange: _Exchange | None = None


class S3Calls:
    """The S3 operations of one plugin instance, each attempt one recorded call under the caller's ctx."""

    def __init__(self, config: S3ObjectConfig, user_agent: str) -> None:
        self.config = config
        session = boto3.session.Session(
            aws_access_key_id=config.aws_access_key_id,
            aws_secret_access_key=config.aws_secret_access_key,
            aws_session_token=config.aws_session_token,
            region_name=config.region,
        )
        self.client = session.client(
            "s3",
            endpoint_url=config.endpoint_url,
            config=Config(
                retries={"total_max_attempts": 1, "mode": "standard"},
                connect_timeout=config.timeout_seconds,
                read_timeout=config.timeout_seconds,
                # No checksums botocore would add on its own: the body on the wire is the bytes recorded.
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                user_agent_extra=user_agent,
            ),
        )
        credentials = session.get_credentials()
        frozen = credentials.get_frozen_credentials() if credentials is not None else None
        self._logs = RedactedLogs(
            [
                config.aws_access_key_id or "",
                config.aws_secret_access_key or "",
                config.aws_session_token or "",
                *((frozen.access_key or "", frozen.secret_key or "", frozen.token or "") if frozen else ()),
            ]
        )
        self._attempt: _Attempt | None = None
        self.policy = retries.RetryPolicy(
            max_attempts=config.max_attempts, backoff_seconds=_BACKOFF_SECONDS, max_wait_seconds=_MAX_WAIT_SECONDS
        )
        events = self.client.meta.events
        events.register("before-send.s3", self._on_send)
        events.register("before-parse.s3", self._on_answer)
        events.register("response-received.s3", self._on_received)

    def close(self) -> None:
        self.client.close()
        self._logs.detach()

    # ------------------------------------------------------------ operations

    def request(
        self,
        ctx: Context,
        operation: str,
        *,
        body: bytes | None = None,
        streaming: bool = False,
        bodiless: bool = False,
        validate: Callable[[Reply], None] | None = None,
        retry: bool = True,
        **params: Any,
    ) -> Reply:
        """Call `operation` (e.g. "UploadPart") with `params`, `body` as its Body. `streaming`: the answer's
        body is read whole (GetObject). `bodiless`: a success must come without a body. `validate` may raise
        MalformedResponse for an answer that cannot be right; the call is then an ERROR call. Throttling,
        5xx, dropped connections, timeouts and garbled answers are tried again up to `max_attempts` times."""
        if not retry:
            return self._once(ctx, operation, params, body, streaming, bodiless, validate)
        return retries.retry(
            ctx,
            self.policy,
            lambda _tries: self._once(ctx, operation, params, body, streaming, bodiless, validate),
            self.judge(ctx),
        )

    def judge(self, ctx: Context) -> Callable[[BaseException], retries.Verdict]:
        """Whether a failed attempt is worth another: throttling, 5xx, timeouts, dropped connections and
        garbled answers are; S3's Retry-After, when it sends one, says how long to wait."""

        def judge(exc: BaseException) -> retries.Verdict:
            if isinstance(exc, ClientError):
                if status_of(exc) not in RETRY_STATUSES and code_of(exc) not in RETRY_CODES:
                    return retries.NOT_RETRIED
                headers = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
                return retries.Verdict(retry=True, retry_after=retries.retry_after(headers, ctx.clock.now()))
            return retries.Verdict(retry=True) if isinstance(exc, TRANSIENT) else retries.NOT_RETRIED

        return judge

    def _once(
        self,
        ctx: Context,
        operation: str,
        params: dict[str, Any],
        body: bytes | None,
        streaming: bool,
        bodiless: bool,
        validate: Callable[[Reply], None] | None,
    ) -> Reply:
        base = {"operation": operation, **_plain(params)}
        attempt = self._attempt = _Attempt(ctx, base, body)
        method = getattr(self.client, _SNAKE.sub("_", operation).lower())
        try:
            with ctx.call(CALL_TYPE, PROVIDER, base) as scope:
                try:
                    parsed = method(**params) if body is None else method(Body=body, **params)
                    exchange = attempt.exchange
                    if streaming and exchange is not None:
                        exchange.response_body = parsed["Body"].read()
                finally:
                    exchange = attempt.exchange
                    if exchange is not None:
                        scope.request = exchange.request_record(base, body)
                        scope.response = exchange.response_record()
                if exchange is None or exchange.status is None:
                    raise MalformedResponse(f"{operation}: botocore answered without sending a request")
                if parsed.get("ETag") and scope.response["etag"] is None:  # CompleteMultipartUpload's is in the body
                    scope.response = {**scope.response, "etag": parsed["ETag"]}
                data = exchange.response_body or b""
                if bodiless and data:
                    raise MalformedResponse(
                        f"{operation}: S3 answered {exchange.status} with a {len(data)}-byte body where none belongs"
                    )
                reply = Reply(exchange.status, exchange.response_headers, data, parsed)
                if validate is not None:
                    validate(reply)
                return reply
        finally:
            self._attempt = None

    # ------------------------------------------------------------ botocore hooks

    def _on_send(self, request: Any, **_: Any) -> None:
        attempt = self._attempt
        if attempt is None:
            return
        if attempt.exchange is not None:
            # botocore is sending again within one operation (a region redirect): the first exchange is a
            # call of its own.
            previous = attempt.exchange
            response = previous.response_record()
            attempt.ctx.record_call(
                call_type=CALL_TYPE,
                provider=PROVIDER,
                request=previous.request_record(attempt.request, attempt.body),
                response=response,
                error={
                    "type": "Resent",
                    "message": f"botocore sent {attempt.request['operation']} again after HTTP {previous.status}",
                },
            )
        body = request.body if isinstance(request.body, bytes | bytearray) else None
        attempt.exchange = _Exchange(
            method=str(request.method),
            url=str(request.url),
            # Credentials never go into the audit trail: the signature header names the access key id, and a
            # session token rides in X-Amz-Security-Token.
            headers=redacted_headers({str(k): _text(v) for k, v in request.headers.items()}),
            body=bytes(body) if body is not None else None,
        )

    def _on_answer(self, response_dict: Mapping[str, Any], **_: Any) -> None:
        attempt = self._attempt
        if attempt is None or attempt.exchange is None:
            return
        exchange = attempt.exchange
        exchange.status = int(response_dict["status_code"])
        exchange.response_headers = {str(k).lower(): _text(v) for k, v in response_dict["headers"].items()}
        body = response_dict.get("body")
        # A streamed body (GetObject's) is read by the caller, never here.
        exchange.response_body = bytes(body) if isinstance(body, bytes | bytearray) else None

    def _on_received(self, response_dict: Mapping[str, Any] | None, **_: Any) -> None:
        """The status as it came off the wire: botocore turns a 200 whose body is not XML (or is an <Error>)
        into a 500 before parsing, which is right for retrying but not what the server said."""
        attempt = self._attempt
        if attempt is None or attempt.exchange is None or not response_dict:
            return
        attempt.exchange.status = int(response_dict["status_code"])


def explained(exc: BaseException, *, who: str, uri: str, bucket: str, permission: str) -> BaseException:
    """The user-facing error for a failed S3 request: what is wrong and what to do, or `exc` itself."""
    status, code = status_of(exc), code_of(exc)
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return ConfigError(
            f"{who}: no usable AWS credentials ({exc}); set `aws_access_key_id` and `aws_secret_access_key`, or "
            "configure boto3's default chain (AWS_ACCESS_KEY_ID, a profile, an instance role)"
        )
    if code == "NoSuchBucket":
        return ConfigError(f"{who}: bucket {bucket!r} does not exist; set the `bucket` option to an existing bucket")
    if code == "NoSuchKey" or (status == 404 and code in (None, "404")):
        return ConfigError(f"{who}: {uri} does not exist; set `bucket` and `path` to an existing object")
    if status == 403:
        return ConfigError(
            f"{who}: access to {uri} denied ({code}); check the credentials, and that they may {permission}"
        )
    return exc
