"""Rate budgets shared by the plugins that call one service: requests and tokens per minute, and back-off
when the service answers "too many requests".

A budget is keyed by a string the plugin chooses (the Azure OpenAI plugins use endpoint + deployment), so
every node, row and thread that calls the same quota waits on the same budget; `shared_budget(key, ...)`
hands out one per key for the whole process. A caller holds a `slot` around each attempt:

    budget = shared_budget("https://r.openai.azure.com|gpt-4o", requests_per_minute=600)
    with budget.slot(ctx.clock.sleep, tokens=estimate) as permit:
        ...send the request...
        permit.throttled(retry_after)   # on a 429; or permit.succeeded() on an answer

`slot` blocks until the request fits: the limits (a token bucket per limit, from pyrate-limiter), any pause
a 429 asked for, and the adaptive cap on requests in flight. By default the buckets hold no burst: requests
(and tokens) go evenly spaced at the limit's rate, because services check per-minute quotas over short fixed
windows (Azure OpenAI over 1 or 10 seconds), and a burst on top of the steady rate can land in one window
together with that window's own share, which is refused. A 429 pauses every
caller of the budget until its Retry-After has passed and halves the cap (at most once per round of
requests, as TCP does); each success raises it again by 1/cap, so it grows by one per cap successes until it
no longer limits anything. Waits go through the caller's `sleep` (the engine's clock, which wakes early when
the run is asked to stop): a wait cut short raises `WaitInterrupted` instead of sending the request.

The module knows nothing of HTTP or of any service; `budget_snapshots()` gives the counters a progress line
can show.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from attrs import frozen
from pyrate_limiter import Duration, Rate, TokenBucket

Sleep = Callable[[float], None]

POLL_SECONDS = 0.02
"""How often a caller held back by the in-flight cap looks again: slots are freed by other threads, and the
wait must go through the caller's interruptible `sleep`, so it polls rather than waits on a condition."""

_ALGORITHM = TokenBucket()
"""Stateless: each budget keeps its own state per limit and steps both limits together, so a request that
fits one limit but not the other spends neither."""


class WaitInterrupted(Exception):
    """A wait for the budget was cut short (the run is stopping): the request was not sent."""


@frozen
class BudgetSnapshot:
    """A budget's counters at one moment."""

    key: str
    requests_per_minute: int | None
    tokens_per_minute: int | None
    waiting: int
    """Callers blocked in `slot` right now."""
    in_flight: int
    """Callers holding a slot right now."""
    in_flight_cap: int | None
    """The adaptive cap on requests in flight after 429s; None when there is none."""
    throttled: int
    """429s (or whatever the plugin reports as throttling) seen since the budget was made."""
    granted: int
    """Slots handed out since the budget was made."""
    paused_for: float
    """Seconds left before a Retry-After lets callers go again (0 when not paused)."""


class _Limit:
    """One per-minute limit as a token bucket: its rate, and the state the algorithm steps."""

    def __init__(self, per_minute: int, burst_seconds: float) -> None:
        self.per_minute = per_minute
        burst = max(1, math.ceil(per_minute * burst_seconds / 60))
        self.rates = [Rate(per_minute, Duration.MINUTE, burst=min(burst, per_minute))]
        self.state = _ALGORITHM.initial(self.rates)

    def step(self, now_ms: int, weight: int) -> tuple[tuple[float, ...], int | None]:
        """The state after `weight` more at `now_ms` and None, or the unchanged state and the wait in ms. A
        weight above the burst (at most a whole minute's budget) waits until it fits the burst it alone makes:
        it is counted in full, and not refused for ever."""
        weight = min(weight, self.per_minute)
        rates = self.rates
        if weight > rates[0].burst:
            rates = [Rate(self.per_minute, Duration.MINUTE, burst=weight)]
        state, decision = _ALGORITHM.step(rates, self.state, now_ms, weight)
        return state, None if decision.allowed else max(1, decision.retry_after_ms or 1)


class RateBudget:
    """Optional requests-per-minute and tokens-per-minute limits, a pause after 429s, and an adaptive cap on
    requests in flight. Thread-safe. `burst_seconds`: how much of a limit may go at once after a quiet spell,
    in seconds' worth of its rate (0: one request, evenly spaced). `now`: the clock it measures time with, in
    seconds (a fake one in tests; it must move on when the `sleep` given to `slot` sleeps)."""

    def __init__(
        self,
        key: str,
        *,
        requests_per_minute: int | None = None,
        tokens_per_minute: int | None = None,
        burst_seconds: float = 0.0,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        for name, value in (("requests_per_minute", requests_per_minute), ("tokens_per_minute", tokens_per_minute)):
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1, not {value!r}")
        if not burst_seconds >= 0:
            raise ValueError(f"burst_seconds must be 0 or more, not {burst_seconds!r}")
        self.key = key
        self.burst_seconds = burst_seconds
        self._now = now
        self._lock = threading.Lock()
        self._requests = _Limit(requests_per_minute, burst_seconds) if requests_per_minute else None
        self._tokens = _Limit(tokens_per_minute, burst_seconds) if tokens_per_minute else None
        self._paused_until = 0.0
        self._cap: float | None = None
        self._round = 0
        """Bumped at each decrease of the cap: a 429 to a request sent before it is no news, so the cap is
        halved once per round of requests, not once per 429 of the same burst."""
        self._peak_in_flight = 0
        self._waiting = 0
        self._in_flight = 0
        self._throttle_count = 0
        self._granted = 0

    # ------------------------------------------------------------ limits

    @property
    def requests_per_minute(self) -> int | None:
        return self._requests.per_minute if self._requests else None

    @property
    def tokens_per_minute(self) -> int | None:
        return self._tokens.per_minute if self._tokens else None

    def tighten(self, *, requests_per_minute: int | None = None, tokens_per_minute: int | None = None) -> None:
        """Apply these limits where they are tighter than the budget's (None: no opinion)."""
        with self._lock:
            if requests_per_minute and (self._requests is None or requests_per_minute < self._requests.per_minute):
                self._requests = _Limit(requests_per_minute, self.burst_seconds)
            if tokens_per_minute and (self._tokens is None or tokens_per_minute < self._tokens.per_minute):
                self._tokens = _Limit(tokens_per_minute, self.burst_seconds)

    # ------------------------------------------------------------ slots

    @contextmanager
    def slot(self, sleep: Sleep, tokens: int = 1) -> Iterator[Permit]:
        """Wait (through `sleep`) until a request of `tokens` fits, then hold a slot in flight for the block.
        A request of 0 tokens counts against the requests only. Raises WaitInterrupted when a wait was cut
        short."""
        permit = self._acquire(sleep, max(0, int(tokens)))
        try:
            yield permit
        finally:
            with self._lock:
                self._in_flight -= 1

    def _acquire(self, sleep: Sleep, tokens: int) -> Permit:
        with self._lock:
            self._waiting += 1
        try:
            while True:
                with self._lock:
                    wait = self._admit(tokens)
                    if wait is None:
                        return Permit(self, self._round)
                before = self._now()
                sleep(wait)
                if self._now() - before < wait / 2:
                    raise WaitInterrupted(f"stopped while waiting {wait:.2f}s for rate budget {self.key!r}")
        finally:
            with self._lock:
                self._waiting -= 1

    def _admit(self, tokens: int) -> float | None:
        """Under the lock: take a slot and return None, or return how long to wait before asking again."""
        now = self._now()
        if now < self._paused_until:
            return self._paused_until - now
        if self._cap is not None and self._in_flight >= int(self._cap):
            return POLL_SECONDS
        now_ms = int(now * 1000)
        stepped = []
        wait_ms = 0
        for limit, weight in ((self._requests, 1), (self._tokens, tokens)):
            if limit is None or weight == 0:
                continue
            state, wait = limit.step(now_ms, weight)
            if wait is None:
                stepped.append((limit, state))
            else:
                wait_ms = max(wait_ms, wait)
        if wait_ms:
            return wait_ms / 1000
        for limit, state in stepped:
            limit.state = state
        self._in_flight += 1
        self._granted += 1
        self._peak_in_flight = max(self._peak_in_flight, self._in_flight)
        return None

    # ------------------------------------------------------------ what the service said

    def _on_throttled(self, round_: int, pause: float) -> None:
        with self._lock:
            self._throttle_count += 1
            self._paused_until = max(self._paused_until, self._now() + max(0.0, pause))
            if round_ == self._round:
                # Halve what was in flight when the service said no (this request included).
                self._cap = max(1.0, (self._in_flight if self._cap is None else min(self._cap, self._in_flight)) / 2)
                self._round += 1

    def _on_success(self) -> None:
        with self._lock:
            if self._cap is not None:
                self._cap += 1 / self._cap
                if self._cap > self._peak_in_flight:
                    self._cap = None  # above anything ever asked for: no cap

    # ------------------------------------------------------------ counters

    def snapshot(self) -> BudgetSnapshot:
        with self._lock:
            return BudgetSnapshot(
                key=self.key,
                requests_per_minute=self.requests_per_minute,
                tokens_per_minute=self.tokens_per_minute,
                waiting=self._waiting,
                in_flight=self._in_flight,
                in_flight_cap=None if self._cap is None else int(self._cap),
                throttled=self._throttle_count,
                granted=self._granted,
                paused_for=max(0.0, self._paused_until - self._now()),
            )


class Permit:
    """Held for one request (see `RateBudget.slot`): tell the budget how the service answered."""

    def __init__(self, budget: RateBudget, round_: int) -> None:
        self._budget = budget
        self._round = round_

    def throttled(self, pause: float) -> None:
        """The service said "too many requests": every caller of the budget waits `pause` seconds (its
        Retry-After, or the plugin's own back-off), and fewer requests go at once."""
        self._budget._on_throttled(self._round, pause)

    def succeeded(self) -> None:
        """The service answered (whatever it answered, it was not throttling): a step back up."""
        self._budget._on_success()


# ---------------------------------------------------------------- the process-wide registry

_budgets: dict[str, RateBudget] = {}
_registry_lock = threading.Lock()


def shared_budget(
    key: str, *, requests_per_minute: int | None = None, tokens_per_minute: int | None = None
) -> RateBudget:
    """The process's budget for `key`, made on first use. Plugins that share a key share the budget, and the
    tightest limit any of them gives applies to all: the limits describe one quota."""
    with _registry_lock:
        budget = _budgets.get(key)
        if budget is None:
            budget = _budgets[key] = RateBudget(
                key, requests_per_minute=requests_per_minute, tokens_per_minute=tokens_per_minute
            )
            return budget
    budget.tighten(requests_per_minute=requests_per_minute, tokens_per_minute=tokens_per_minute)
    return budget


def budget_snapshots() -> list[BudgetSnapshot]:
    """Every shared budget's counters, by key."""
    with _registry_lock:
        budgets = sorted(_budgets.items())
    return [budget.snapshot() for _key, budget in budgets]


__all__ = ["BudgetSnapshot", "Permit", "RateBudget", "WaitInterrupted", "budget_snapshots", "shared_budget"]
