"""Azure OpenAI's per-deployment rate limits, as the emulator enforces them on chat completions.

What Azure documents (learn.microsoft.com, "Manage Azure OpenAI quota", "Quotas and limits"), and how it
is modelled here:

- Tokens per minute (TPM) are charged when a request *arrives*, from an estimate, not from the usage the
  answer reports: the prompt's characters and `max_tokens` (times `n`/`best_of`). Here: every message's
  text, one token per 4 characters (rounded up), plus `max_tokens` (or `max_completion_tokens`) times
  `max(n, best_of, 1)`. Without `max_tokens` Azure reserves the model's whole context; the emulator knows
  no model's context, so such a request is charged its prompt only.
- Requests per minute (RPM) are not checked over the minute but over short sub-windows ("typically 1 or
  10 seconds"): a 600 RPM deployment refuses the 11th request in one second. Here the minute's budget is
  split into windows of `window_seconds` (default 10 s; 1200 RPM allows 200 requests per 10 s, rounded
  down), widened to 60/RPM seconds when a window would not hold one whole request.
- TPM is checked over windows of 60 s.
- Windows are fixed, aligned on the clock (`floor(now / length)`), per deployment: the same arrival times
  give the same answers. A refused request spends nothing (it spends neither budget).
- A refusal is HTTP 429 with Azure's body (`{"error": {"code": "429", "message": "Requests to the
  ChatCompletions_Create Operation under Azure OpenAI API version ... have exceeded call rate limit ...
  Please retry after N seconds. ..."}}`, "token rate limit" when TPM refused), `retry-after` (whole
  seconds, rounded up, at least 1) and `retry-after-ms` until the refusing window ends.
- Every chat completion answer carries `x-ratelimit-remaining-requests` (left in the current RPM window)
  and `x-ratelimit-remaining-tokens` (left in the current minute), each when that limit is set.
"""

from __future__ import annotations

import math
import threading
from typing import Any

from attrs import frozen

CHARS_PER_TOKEN = 4
"""OpenAI's rule of thumb for English text; Azure's estimate is also taken from characters, not a tokenizer."""
TOKEN_WINDOW_SECONDS = 60.0


def estimated_tokens(body: dict[str, Any], prompt: str) -> int:
    """The tokens a request is charged on arrival: its prompt's characters, plus what it may generate."""
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    choices = max(_int(body.get("n")), _int(body.get("best_of")), 1)
    completion = limit * choices if isinstance(limit, int) and limit > 0 else 0
    return math.ceil(len(prompt) / CHARS_PER_TOKEN) + completion


def _int(value: Any) -> int:
    return value if isinstance(value, int) else 1


@frozen
class Admission:
    """What the limits said about one request."""

    admitted: bool
    refused_by: str | None
    """"call" (RPM) or "token" (TPM): the words Azure's message uses."""
    retry_after: float
    """Seconds until the refusing window ends; 0 when admitted."""
    remaining_requests: int | None
    remaining_tokens: int | None

    def headers(self) -> dict[str, str]:
        found: dict[str, str] = {}
        if self.remaining_requests is not None:
            found["x-ratelimit-remaining-requests"] = str(self.remaining_requests)
        if self.remaining_tokens is not None:
            found["x-ratelimit-remaining-tokens"] = str(self.remaining_tokens)
        if not self.admitted:
            found["retry-after"] = str(self.retry_after_seconds)
            found["retry-after-ms"] = str(math.ceil(self.retry_after * 1000))
        return found

    @property
    def retry_after_seconds(self) -> int:
        return max(1, math.ceil(self.retry_after))

    def error_body(self, api_version: str) -> dict[str, Any]:
        message = (
            f"Requests to the ChatCompletions_Create Operation under Azure OpenAI API version {api_version} have "
            f"exceeded {self.refused_by} rate limit of your current OpenAI S0 pricing tier. Please retry after "
            f"{self.retry_after_seconds} seconds. Please go here: https://aka.ms/oai/quotaincrease if you would like "
            "to further increase the default rate limit."
        )
        return {"error": {"code": "429", "message": message}}


@frozen
class _Check:
    refuses_as: str
    key: str
    budget: int
    length: float
    cost: int


class RateBudgets:
    """The budget each deployment has spent in its current windows; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spent: dict[tuple[str, str], tuple[int, int]] = {}
        """(deployment, "requests"/"tokens") -> (window index, spent in it)."""

    def clear(self) -> None:
        with self._lock:
            self._spent.clear()

    def admit(
        self,
        deployment: str,
        now: float,
        *,
        requests_per_minute: int | None,
        tokens_per_minute: int | None,
        window_seconds: float,
        tokens: int,
    ) -> Admission:
        """Spend one request and `tokens` if every limit has room for them now, else spend nothing."""
        checks: list[_Check] = []
        if requests_per_minute is not None:
            length = max(window_seconds, 60.0 / requests_per_minute)
            # The epsilon keeps 60/RPM-second windows at exactly one request despite float rounding.
            budget = int(requests_per_minute * length / 60.0 + 1e-9)
            checks.append(_Check("call", "requests", budget, length, 1))
        if tokens_per_minute is not None:
            checks.append(_Check("token", "tokens", tokens_per_minute, TOKEN_WINDOW_SECONDS, tokens))
        with self._lock:
            spent: list[tuple[_Check, int, int]] = []
            for check in checks:
                index = math.floor(now / check.length)
                window, used = self._spent.get((deployment, check.key), (index, 0))
                spent.append((check, index, used if window == index else 0))
            refused = [(c, i) for c, i, used in spent if used + c.cost > c.budget]
            if not refused:
                for check, index, used in spent:
                    self._spent[(deployment, check.key)] = (index, used + check.cost)
        left = {c.key: c.budget - used - (0 if refused else c.cost) for c, _, used in spent}
        if not refused:
            return Admission(True, None, 0.0, left.get("requests"), left.get("tokens"))
        # Retrying before the latest refusing window ends is refused again, so that is the wait to tell.
        waits = [((index + 1) * check.length - now, check.refuses_as) for check, index in refused]
        wait, refuses_as = max(waits)
        return Admission(False, refuses_as, wait, left.get("requests"), left.get("tokens"))
