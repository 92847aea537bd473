"""Retrying external calls: one policy, every attempt a recorded call.

A plugin that talks to a service retries what is worth retrying (a 429, a 5xx, a timeout, a dropped
connection) and records every attempt, failed ones included: an attempt that is not on record did not
happen, yet the service saw it. This module is the one retry loop the shipped plugins, contrib and the
engine use:

    policy = RetryPolicy(max_attempts=config.max_attempts, backoff_seconds=config.backoff_seconds)
    answer = call_with_retries(
        ctx, policy, "http", "my_service", request,
        send=lambda: client.post(url, json=body),
        describe=lambda response: {"status": response.status_code, "body": response.json()},
        judge=judge_httpx,   # exception -> Verdict (retry or not, Retry-After, unreachable)
        service=url,
    )

`call_with_retries` records each attempt with `ctx.call`; a plugin whose attempt records itself (several
HTTP exchanges per SDK operation, say) gives its own attempt to `retry`. Waits run on `ctx.clock`, so a
stop request (Ctrl-C) cuts them short. `retry_after` reads the service's wish once, the same way for
everyone: `retry-after-ms`, then `Retry-After` as seconds or as an HTTP date.
"""

from __future__ import annotations

import email.utils
import math
from collections.abc import Callable, Mapping
from datetime import UTC
from typing import Any, TypeVar, overload

from attrs import define, field, frozen

from elspeth.api import Context
from elspeth.errors import ServiceUnreachable
from elspeth.options import not_negative, positive

T = TypeVar("T")
R = TypeVar("R")

MAX_THROTTLED = 50
"""429s one request may get before they count against `max_attempts`, however long `max_throttled_seconds`
is: a service answering 429 with Retry-After: 0 would otherwise be asked again and again, each time a
recorded call."""


@frozen(kw_only=True)
class RetryPolicy:
    """How often and how patiently to try one request."""

    max_attempts: int = field(default=3, validator=positive)
    """Attempts per request, counting the first."""
    backoff_seconds: float = field(default=1.0, validator=not_negative)
    """Wait before the 2nd attempt, doubled before each later one, unless the service said how long."""
    max_wait_seconds: float = field(default=60.0, validator=not_negative)
    """No wait is longer, a Retry-After included: these retries are for short hiccups, not outages."""
    max_throttled_seconds: float = field(default=0.0, validator=not_negative)
    """For how long a request keeps waiting out 429s (a quota that is busy, not a request that failed)
    without using up `max_attempts`; 0: a 429 counts like any other failure."""

    def wait(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after attempt `attempt` (from 1) failed: the service's Retry-After if it gave one,
        else the doubling back-off; at most `max_wait_seconds`."""
        seconds = retry_after if retry_after is not None else self.backoff_seconds * 2 ** (attempt - 1)
        return min(max(seconds, 0.0), self.max_wait_seconds)


@frozen
class Verdict:
    """What a failed attempt means for the next one."""

    retry: bool
    """Worth another attempt: the service's state (429, 5xx, timeout), not the request's fault."""
    retry_after: float | None = None
    """Seconds the service asked for (see `retry_after`); None: the policy's back-off."""
    unreachable: bool = False
    """The request never reached the service (refused, no such host, connect timeout). Once the attempts
    are used up this is no row's failure: `ServiceUnreachable` stops the run for a later resume."""
    throttled: bool = False
    """A 429: waited out under `max_throttled_seconds` without using an attempt."""
    paced: bool = False
    """The wait was already taken care of (a rate budget paused every caller): do not wait again."""


NOT_RETRIED = Verdict(retry=False)


@define
class Tries:
    """Where the loop is: handed to each attempt, and readable after the last one failed."""

    attempt: int = 0
    """The attempt under way (from 1); throttled ones are not counted."""
    throttled: int = 0
    """429s waited out so far."""


def retry(
    ctx: Context,
    policy: RetryPolicy,
    attempt: Callable[[Tries], T],
    judge: Callable[[BaseException], Verdict],
    *,
    service: str = "the service",
) -> T:
    """`attempt(tries)` until it returns or `judge` says a failure is not worth another try, or the attempts
    are used up; then the last failure is raised (as `ServiceUnreachable` when the service could not even be
    reached). `attempt` must record what it sends: `call_with_retries` does that with `ctx.call`."""
    tries = Tries()
    first = ctx.clock.monotonic()
    while True:
        tries.attempt += 1
        try:
            return attempt(tries)
        except Exception as exc:
            verdict = judge(exc)
            if verdict.throttled and _keeps_waiting(policy, tries, ctx.clock.monotonic() - first):
                tries.throttled += 1
                tries.attempt -= 1
            elif not verdict.retry or tries.attempt >= policy.max_attempts:
                if verdict.unreachable and verdict.retry:
                    raise ServiceUnreachable(service, f"{exc} ({_attempts(tries.attempt)})") from exc
                raise
            if not verdict.paced:
                seconds = policy.wait(max(tries.attempt, 1), verdict.retry_after)
                if seconds > 0:
                    ctx.clock.sleep(seconds)


def _attempts(n: int) -> str:
    return "1 attempt" if n == 1 else f"{n} attempts"


def _keeps_waiting(policy: RetryPolicy, tries: Tries, waited: float) -> bool:
    return tries.throttled + 1 < MAX_THROTTLED and waited < policy.max_throttled_seconds


@overload
def call_with_retries(
    ctx: Context,
    policy: RetryPolicy,
    call_type: str,
    provider: str,
    request: Any,
    send: Callable[[], T],
    judge: Callable[[BaseException], Verdict],
    *,
    describe: None = None,
    service: str = "the service",
) -> T: ...


@overload
def call_with_retries(
    ctx: Context,
    policy: RetryPolicy,
    call_type: str,
    provider: str,
    request: Any,
    send: Callable[[], T],
    judge: Callable[[BaseException], Verdict],
    *,
    describe: Callable[[T], R],
    service: str = "the service",
) -> R: ...


def call_with_retries(
    ctx: Context,
    policy: RetryPolicy,
    call_type: str,
    provider: str,
    request: Any,
    send: Callable[[], T],
    judge: Callable[[BaseException], Verdict],
    *,
    describe: Callable[[T], R] | None = None,
    service: str = "the service",
) -> T | R:
    """`send()` retried by `policy`, each attempt one call recorded with `ctx.call` (a failed attempt as an
    ERROR call): the response recorded, and returned, is `describe(result)` (the result itself by default).
    `describe` runs inside the recorded call, so a body it cannot read (raising) makes an ERROR call too."""

    def once(_tries: Tries) -> T | R:
        with ctx.call(call_type, provider, request) as scope:
            result = send()
            response = describe(result) if describe is not None else result
            scope.response = response
            return response

    return retry(ctx, policy, once, judge, service=service)


def retry_after(headers: Mapping[str, Any] | None, now: float) -> float | None:
    """Seconds a response asks the client to wait: `retry-after-ms` (Azure's milliseconds), else
    `Retry-After` as delay-seconds or an HTTP date (RFC 9110 10.2.3), a date in the past meaning at once.
    None when there is neither, or neither can be read. `now`: the wall clock (`ctx.clock.now()`)."""
    if not headers:
        return None
    millis = _number(_header(headers, "retry-after-ms"))
    if millis is not None:
        return millis / 1000
    value = _header(headers, "retry-after")
    seconds = _number(value)
    if seconds is not None or value is None:
        return seconds
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = when.timestamp() - now
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _header(headers: Mapping[str, Any], name: str) -> str | None:
    """A header by name, whatever the case of the mapping's keys (SDKs differ)."""
    value = headers.get(name)
    if value is None:
        value = next((v for k, v in headers.items() if isinstance(k, str) and k.lower() == name), None)
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    return None if value is None else str(value).strip()


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


__all__ = [
    "MAX_THROTTLED",
    "NOT_RETRIED",
    "RetryPolicy",
    "Tries",
    "Verdict",
    "call_with_retries",
    "retry",
    "retry_after",
]
