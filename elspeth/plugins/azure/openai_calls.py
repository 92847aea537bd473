"""Calls to Azure OpenAI through the `openai` SDK, each one recorded, with the plugins' own retries.

Every HTTP request the SDK sends is one recorded call: the SDK's retries are off (`max_retries=0`) and the
plugin retries what is worth retrying (429, 408, 409, 5xx, timeouts, dropped connections, a garbled
body), recording each attempt; `ctx.call` records a failure as an ERROR call. A request is recorded as
`{"operation", "method", "url", ...}` plus exactly what the SDK sends (`body` for JSON, the fields of a
multipart upload), a response as the SDK's parsed object (`model_dump`) or the bytes of a file; the api
key travels only in the `api-key` header, which is never recorded. A service that cannot be reached at all
(connection refused, no such host, connect timeout) on the last attempt is no row's failure: the call raises
`ServiceUnreachable`, which stops the run for a later `elspeth resume`.

Every attempt also goes through the rate budget of its endpoint and deployment (`elspeth.rate_budgets`),
shared by every node, row and thread calling that deployment: `requests_per_minute` and `tokens_per_minute`
(a chat request weighs its estimated tokens), a pause for the Retry-After of each 429, and fewer requests
in flight after 429s. A 429 is the quota being busy, not the request failing: it does not use up
`max_attempts` while `max_throttled_seconds` lasts.

The SDK is imported when a plugin first calls, so `elspeth plugins` works without `elspeth[azure]`.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, TypeVar
from urllib.parse import quote

from attrs import evolve, field, frozen

from elspeth import canonical
from elspeth.api import Context, Row
from elspeth.errors import ConfigError, NonCanonicalValueError
from elspeth.options import one_of, positive
from elspeth.plugins.azure.prompts import PromptTemplate, check_template
from elspeth.rate_budgets import RateBudget, WaitInterrupted, shared_budget
from elspeth.retries import RetryPolicy, Tries, Verdict, retry, retry_after

if TYPE_CHECKING:
    import openai

PROVIDER = "azure_openai"
COGNITIVE_SERVICES_SCOPE = "https://cognitiveservices.azure.com/.default"
CONNECT_TIMEOUT_SECONDS = 10.0
"""At most this long to open a connection, whatever `timeout_seconds` allows a request."""

DEFAULT_COMPLETION_TOKENS = 1000
"""A chat request's completion, for the token budget, when `max_tokens` is not set (as the OpenAI cookbook's
parallel processor estimates: prompt characters / 4 + max_tokens). Set `max_tokens` for a closer estimate."""

T = TypeVar("T")
R = TypeVar("R")
FailureKind = Literal["transient", "unreachable", "row", "fatal"]
_CONNECT_ERRORS = frozenset({"ConnectError", "ConnectTimeout"})
"""httpx's (and its forks') names for a request that never reached the service."""


# ---------------------------------------------------------------- options


def per_minute(_instance: Any, attribute: Any, value: int | None) -> None:
    if value is not None and value < 1:
        raise ConfigError(
            f"option `{attribute.name}` must be a whole number of at least 1 (the deployment's quota per minute), "
            f"not {value!r}; leave it out for no limit"
        )


def valid_template(_instance: Any, attribute: Any, value: Any) -> None:
    if value is not None:
        check_template(attribute.name, value)


@frozen(kw_only=True)
class AzureOpenAIOptions:
    """Options every Azure OpenAI plugin takes."""

    endpoint: str
    """The resource's endpoint, e.g. https://my-resource.openai.azure.com (the SDK's azure_endpoint)."""
    deployment: str
    """The model deployment to call."""
    api_version: str = "2024-10-21"
    api_key: str | None = None
    """Required unless `use_default_credential`."""
    use_default_credential: bool = False
    """Authenticate with azure-identity's DefaultAzureCredential (managed identity, az login, ...) instead."""
    system_prompt: str | None = field(default=None, validator=valid_template)
    """A template, sent as the system message before each prompt."""
    response_format: str = field(default="text", validator=one_of("text", "json"))
    """json: ask for a JSON object and parse it; an answer that is not JSON is the row's error."""
    temperature: float | None = None
    max_tokens: int | None = field(default=None, validator=positive)
    timeout_seconds: float = field(default=60.0, validator=positive)
    """Per HTTP request."""
    max_attempts: int = field(default=3, validator=positive)
    """Attempts per request, counting the first, for 429/5xx/timeouts/dropped connections."""
    backoff_seconds: float = 1.0
    """Wait before the 2nd attempt, doubling after; a Retry-After from the service takes precedence."""
    requests_per_minute: int | None = field(default=None, validator=per_minute)
    """Requests let go per minute, evenly spaced; a little under the deployment's quota (90%) avoids most 429s.
    Every plugin calling this endpoint and deployment in the process shares it (the tightest limit any of them
    gives applies). None: no limit but the service's 429s."""
    tokens_per_minute: int | None = field(default=None, validator=per_minute)
    """The deployment's token quota, shared likewise; a chat request weighs its prompt's characters / 4 plus
    `max_tokens` (1000 when unset)."""
    max_throttled_seconds: float = field(default=300.0, validator=positive)
    """How long one request keeps waiting out 429s (at most 50 of them) before each further 429 counts
    against `max_attempts` like a 5xx."""

    def __attrs_post_init__(self) -> None:
        if not self.endpoint.startswith(("https://", "http://")):
            raise ConfigError(
                f"option `endpoint` must be an https:// URL, e.g. https://my-resource.openai.azure.com, "
                f"not {self.endpoint!r}"
            )
        if self.api_key and self.use_default_credential:
            raise ConfigError("options `api_key` and `use_default_credential` exclude each other; give one")
        if not self.api_key and not self.use_default_credential:
            raise ConfigError(
                "option `api_key` is required (or set `use_default_credential: true`); put the key in "
                "an environment variable and write api_key: ${AZURE_OPENAI_API_KEY}"
            )
        if self.temperature is not None and not 0 <= self.temperature <= 2:
            raise ConfigError(f"option `temperature` must be between 0 and 2, not {self.temperature!r}")
        if self.backoff_seconds < 0:
            raise ConfigError(f"option `backoff_seconds` must be 0 or more, not {self.backoff_seconds!r}")


# ---------------------------------------------------------------- failures


class CallFailure(Exception):
    """A call that failed for good (after the plugin's retries). `kind`: "transient" (the service's state:
    worth trying again later), "unreachable" (no connection at all: refused, no such host, connect timeout;
    retried, then raised as ServiceUnreachable), "row" (the service refused this input, e.g. a content filter,
    or its answer is unusable) or "fatal" (configuration: bad key, unknown deployment)."""

    def __init__(
        self,
        reason: str,
        kind: FailureKind,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        stopped: bool = False,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind
        self.status = status
        self.retry_after = retry_after
        self.stopped = stopped
        """The run is stopping: nothing was sent, and trying again is no use."""
        self.attempts = 1
        self.throttled = 0
        """429s this request got (each a recorded call), not counted in `attempts` while they were waited out."""

    @property
    def retryable(self) -> bool:
        return self.kind in ("transient", "unreachable")

    def details(self) -> dict[str, Any]:
        return {"kind": self.kind, "status": self.status, "attempts": self.attempts, "throttled": self.throttled}


def _sdk_errors() -> tuple[type[BaseException], ...]:
    import openai

    # ValueError: a body that is not JSON (json.JSONDecodeError) from a garbled or cut response.
    return (openai.OpenAIError, ValueError)


def classify(exc: BaseException, now: float) -> CallFailure:
    """What an exception from the SDK means for the row (`now`: the wall clock, for a Retry-After date)."""
    import openai

    if isinstance(exc, openai.APIConnectionError):
        cause = f" ({type(exc.__cause__).__name__}: {exc.__cause__})" if exc.__cause__ else ""
        if _never_connected(exc):
            return CallFailure(f"no connection: {exc}{cause}", "unreachable")
        if isinstance(exc, openai.APITimeoutError):
            return CallFailure(f"the request timed out: {exc}", "transient")
        return CallFailure(f"connection failed: {exc}{cause}", "transient")
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        message = _error_message(exc.body) or exc.message
        reason = f"HTTP {status} from Azure OpenAI: {message}"
        if status in (408, 409, 429) or status >= 500:
            return CallFailure(reason, "transient", status=status, retry_after=retry_after(exc.response.headers, now))
        if status in (400, 413, 422):
            return CallFailure(reason, "row", status=status)
        return CallFailure(reason, "fatal", status=status)
    if isinstance(exc, ValueError):
        return CallFailure(f"the response could not be read: {type(exc).__name__}: {exc}", "transient")
    return CallFailure(f"{type(exc).__name__}: {exc}", "fatal")


def _never_connected(exc: BaseException) -> bool:
    """Whether the request never reached the service (as opposed to a connection that broke or timed out
    after it was sent, where the service may have acted on it)."""
    cause: BaseException | None = exc.__cause__
    while cause is not None:
        if any(cls.__name__ in _CONNECT_ERRORS for cls in type(cause).__mro__):
            return True
        cause = cause.__cause__
    return False


def _error_message(body: object) -> str | None:
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            code, message = inner.get("code"), inner.get("message")
            if message:
                return f"{code}: {message}" if code else str(message)
    return None


def verdict(exc: BaseException) -> Verdict:
    """What a failed attempt (a CallFailure) means for the next one. A 429 is the quota being busy, not this
    request failing: counted against max_attempts, a run at the deployment's quota would fail rows that only
    had to wait their turn, so it is waited out (under `max_throttled_seconds`); its wait is the pause the 429
    put on the whole budget, taken in the next slot."""
    if not isinstance(exc, CallFailure) or exc.stopped:
        return Verdict(retry=False)
    throttled = exc.status == 429
    return Verdict(
        retry=exc.retryable,
        retry_after=exc.retry_after,
        unreachable=exc.kind == "unreachable",
        throttled=throttled,
        paced=throttled,
    )


# ---------------------------------------------------------------- the client


class AzureOpenAIClient:
    """One SDK client per plugin instance, built on first use, and every call it makes recorded."""

    def __init__(self, options: AzureOpenAIOptions) -> None:
        self.options = options
        self._sdk: openai.AzureOpenAI | None = None
        self._lock = threading.Lock()
        self.policy = RetryPolicy(
            max_attempts=options.max_attempts,
            backoff_seconds=options.backoff_seconds,
            max_throttled_seconds=options.max_throttled_seconds,
        )
        self.budget: RateBudget = shared_budget(
            f"{options.endpoint.rstrip('/')}|{options.deployment}",
            requests_per_minute=options.requests_per_minute,
            tokens_per_minute=options.tokens_per_minute,
        )

    @property
    def sdk(self) -> openai.AzureOpenAI:
        return self.connect()

    def connect(self) -> openai.AzureOpenAI:
        """The client, built on first use (no request is sent to build it), once for every thread."""
        with self._lock:
            if self._sdk is None:
                self._sdk = self._build()
            return self._sdk

    def _build(self) -> openai.AzureOpenAI:
        try:
            import openai
        except ImportError:  # pragma: no cover - openai comes with elspeth[azure]
            raise ConfigError("the Azure OpenAI plugins need the openai SDK: pip install 'elspeth[azure]'") from None
        o = self.options
        common: dict[str, Any] = {
            "azure_endpoint": o.endpoint,
            "api_version": o.api_version,
            # A service that is not there should not cost `timeout_seconds` per attempt to notice.
            "timeout": openai.Timeout(o.timeout_seconds, connect=min(o.timeout_seconds, CONNECT_TIMEOUT_SECONDS)),
            "max_retries": 0,  # every HTTP request is one recorded call; the plugin retries
        }
        if o.use_default_credential:
            from azure.identity import DefaultAzureCredential, get_bearer_token_provider

            provider = get_bearer_token_provider(DefaultAzureCredential(), COGNITIVE_SERVICES_SCOPE)
            return openai.AzureOpenAI(azure_ad_token_provider=provider, **common)
        return openai.AzureOpenAI(api_key=o.api_key, **common)

    def close(self) -> None:
        with self._lock:
            if self._sdk is not None:
                self._sdk.close()
                self._sdk = None

    def url(self, path: str) -> str:
        """The URL the SDK requests for `path` (under /openai), as recorded: no credentials in it."""
        return f"{self.options.endpoint.rstrip('/')}/openai{path}?api-version={quote(self.options.api_version)}"

    def call(
        self,
        ctx: Context,
        call_type: str,
        request: dict[str, Any],
        send: Callable[[], T],
        describe: Callable[[T], R],
        *,
        attempts: int | None = None,
        tokens: int = 0,
    ) -> R:
        """`send()` under `ctx.call`, its result recorded as, and returned as, `describe(result)`; retried as
        the options say (or `attempts` times). Each attempt first waits for the budget (`tokens`: what the
        request weighs against `tokens_per_minute`). Raises CallFailure once retries are exhausted or the
        failure is not worth retrying, ServiceUnreachable when the last attempt could not even connect."""
        self.connect()  # outside the recorded call: a client that cannot be built is no failed call
        policy = self.policy if attempts is None else evolve(self.policy, max_attempts=attempts)

        def attempt(tries: Tries) -> R:
            try:
                return self._attempt(ctx, call_type, request, send, describe, tokens, tries.throttled + 1)
            except WaitInterrupted as exc:
                # Nothing was sent: the run is stopping (no use trying again), and the work will be done again.
                failure = CallFailure(str(exc), "transient", stopped=True)
                failure.attempts, failure.throttled = tries.attempt - 1, tries.throttled
                raise failure from exc
            except CallFailure as failure:
                failure.attempts, failure.throttled = tries.attempt, tries.throttled + (failure.status == 429)
                raise

        return retry(ctx, policy, attempt, verdict, service=self.options.endpoint)

    def _attempt(
        self,
        ctx: Context,
        call_type: str,
        request: dict[str, Any],
        send: Callable[[], T],
        describe: Callable[[T], R],
        tokens: int,
        throttle: int,
    ) -> R:
        """One attempt, recorded, in a slot of the budget, which hears how the service answered. Raises
        CallFailure (its cause: the SDK's exception), or WaitInterrupted when the wait for the budget was cut
        short."""
        errors = _sdk_errors()
        with self.budget.slot(ctx.clock.sleep, tokens) as permit:
            try:
                with ctx.call(call_type, PROVIDER, request) as scope:
                    described = describe(send())
                    scope.response = described
            except errors as exc:
                failure = classify(exc, ctx.clock.now())
                if failure.status == 429:
                    permit.throttled(self.policy.wait(throttle, failure.retry_after))
                elif failure.status is not None and failure.status < 500:
                    permit.succeeded()  # an answer, if not the one hoped for: the service is keeping up
                raise failure from exc
            permit.succeeded()
            return described

    # ------------------------------------------------------------ chat completions

    def chat_body(self, messages: list[dict[str, str]]) -> dict[str, Any]:
        """The JSON body of a chat completion request, exactly as the SDK sends it (and a batch line holds)."""
        o = self.options
        body: dict[str, Any] = {"model": o.deployment, "messages": messages}
        if o.temperature is not None:
            body["temperature"] = o.temperature
        if o.max_tokens is not None:
            body["max_tokens"] = o.max_tokens
        if o.response_format == "json":
            body["response_format"] = {"type": "json_object"}
        return body

    def chat(self, ctx: Context, messages: list[dict[str, str]]) -> Any:
        """One chat completion, recorded (call type "llm"); its answer as `answer()` reads it."""
        body = self.chat_body(messages)
        deployment = self.options.deployment
        request = {
            "operation": "chat.completions.create",
            "method": "POST",
            "url": self.url(f"/deployments/{quote(deployment, safe='')}/chat/completions"),
            "deployment": deployment,
            "body": body,
        }
        completion = self.call(
            ctx,
            "llm",
            request,
            lambda: self.sdk.chat.completions.create(**body),
            lambda result: result.model_dump(mode="json"),
            tokens=estimate_tokens(body),
        )
        return self.answer(completion)

    def answer(self, completion: Any) -> Any:
        """The answer in a chat.completion object (a dict): its text, or the JSON value in JSON mode.
        Raises CallFailure("row") when there is none, or it is not the JSON asked for."""
        try:
            choice = completion["choices"][0]
            content = choice["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise CallFailure("the completion holds no choice with a message", "row") from None
        if not isinstance(content, str):
            reason = choice.get("finish_reason") if isinstance(choice, dict) else None
            raise CallFailure(f"the completion holds no text (finish_reason {reason!r})", "row")
        if self.options.response_format != "json":
            return content
        try:
            value = strict_json(content)
            canonical.canonical_bytes(value)
        except NonCanonicalValueError as exc:
            raise CallFailure(f"the JSON answer holds a value no audit trail can hold exactly: {exc}", "row") from None
        except ValueError as exc:
            raise CallFailure(f"response_format is json, but the answer is not JSON: {exc}", "row") from None
        if not isinstance(value, dict):
            raise CallFailure(f"response_format is json, but the answer is a JSON {type(value).__name__}", "row")
        return value


def estimate_tokens(body: dict[str, Any]) -> int:
    """What a chat request weighs against `tokens_per_minute`: its messages' characters / 4 (a token is about
    4 characters of English) plus the completion it may get, `max_tokens` or DEFAULT_COMPLETION_TOKENS."""
    chars = sum(len(str(m.get("content") or "")) for m in body.get("messages", ()))
    return math.ceil(chars / 4) + (body.get("max_tokens") or DEFAULT_COMPLETION_TOKENS)


def strict_json(text: str) -> Any:
    """json.loads without NaN, Infinity or numbers too big for a float, which no Landscape may hold."""

    def refuse(name: str) -> Any:
        raise ValueError(f"{name} is not valid JSON")

    def finite(number: str) -> float:
        value = float(number)
        if not math.isfinite(value):
            raise ValueError(f"{number} is too big for a float")
        return value

    return json.loads(text, parse_constant=refuse, parse_float=finite)


# ---------------------------------------------------------------- prompts


class Prompts:
    """The messages of one query: the optional system prompt and the user prompt, both templates."""

    def __init__(self, prompt: str, prompt_option: str, system_prompt: str | None) -> None:
        self.user = PromptTemplate(prompt, prompt_option)
        self.system = PromptTemplate(system_prompt, "system_prompt") if system_prompt is not None else None

    def messages(self, row: Row) -> list[dict[str, str]]:
        """Raises PromptError when the row does not fit the templates."""
        messages = []
        if self.system is not None:
            messages.append({"role": "system", "content": self.system.render(row)})
        messages.append({"role": "user", "content": self.user.render(row)})
        return messages
